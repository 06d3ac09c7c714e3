"""A SQLite connection with the `sqlite-vec` extension loaded, in WAL mode.

Python's own `sqlite3` can load extensions only when CPython was built with them enabled, which many builds
(this project's CI interpreter among them) are not; `pysqlite3-binary` (the same DB-API module with a recent
SQLite inside) is used then. WAL lets readers go on while one writer commits; each commit is atomic for them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import ModuleType

from persona_server.knowledge import EXTRA_HINT, KnowledgeUnavailable

# How long a writer waits for another process's write to finish (SQLite serialises writers).
BUSY_TIMEOUT_MS = 30_000


def _module() -> ModuleType:
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        import pysqlite3.dbapi2 as pysqlite3  # type: ignore[import-not-found]
    except ImportError:
        raise KnowledgeUnavailable(
            f"this Python's sqlite3 cannot load extensions and pysqlite3 is not installed: {EXTRA_HINT}") from None
    return pysqlite3  # type: ignore[no-any-return]


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection to the database file with sqlite-vec loaded (usable from any thread, one at a time)."""
    try:
        import sqlite_vec  # type: ignore[import-untyped]
    except ImportError:
        raise KnowledgeUnavailable(f"the knowledge index needs sqlite-vec: {EXTRA_HINT}") from None
    module = _module()
    # Autocommit mode (isolation_level None): transactions are opened explicitly, BEGIN IMMEDIATE for writes.
    conn: sqlite3.Connection = module.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
                                              isolation_level=None)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; an index is derived data anyway
    conn.execute("PRAGMA foreign_keys = ON")
    return conn
