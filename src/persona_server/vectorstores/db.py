"""The SQLite database under the data directory: one connection per process, shared by the metadata and (with
the default backend) the `sqlite-vec` vectors.

Python's own `sqlite3` cannot load extensions where the interpreter was built without that support (pyenv's
default build, macOS's system Python); `sqlean.py`, a drop-in build of the same module that can, is used then.
Both connections of a process must come from the same SQLite library: two copies of SQLite in one process do not
see each other's POSIX locks on the same file, so one connection serves everything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from persona_server.vectorstores import INSTALL_HINT, VectorStoreUnavailable

DB_NAME = "vectorstores.sqlite3"
T = TypeVar("T")


def sqlite_module(extensions: bool) -> ModuleType:
    """The DB-API module to open the database with: `sqlite3` when it will do, else `sqlean`."""
    import sqlite3

    if not extensions or hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        import sqlean  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise VectorStoreUnavailable(
            f"this Python's sqlite3 cannot load the sqlite-vec extension, and sqlean.py is not installed "
            f"({INSTALL_HINT})") from None
    return sqlean  # type: ignore[no-any-return,unused-ignore]


class Database:
    """One connection, used by one thread at a time (calls come from worker threads)."""

    def __init__(self, path: Path, *, vec: bool) -> None:
        module = sqlite_module(vec)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode; `transaction()` opens explicit ones.
        self.conn: Any = module.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self.lock = threading.RLock()
        if vec:
            try:
                import sqlite_vec  # type: ignore[import-not-found,unused-ignore]
            except ImportError:
                raise VectorStoreUnavailable(f"the sqlite-vec package is not installed ({INSTALL_HINT})") from None
            self.conn.enable_load_extension(True)
            sqlite_vec.load(self.conn)
            self.conn.enable_load_extension(False)
        # WAL: the `--workers` processes read while one writes; a writer waits for another up to the timeout.
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def run(self, work: Callable[[Any], T]) -> T:
        """`work(conn)` inside one transaction."""
        with self.transaction() as conn:
            return work(conn)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            return list(self.conn.execute(sql, params).fetchall())

    def close(self) -> None:
        with self.lock:
            self.conn.close()
