"""The SQLite database under the data directory: one connection per process, shared by the metadata and (with
the default backend) the `sqlite-vec` vectors, so a deletion removes both in one transaction.

With sqlite-vec the connection is the knowledge index's (`knowledge/sqlite.py`: Python's own `sqlite3`, or
`pysqlite3` where that cannot load extensions); with Chroma holding the vectors, plain `sqlite3`. Never both for
one file in one process: two copies of SQLite do not see each other's POSIX locks on the same file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from persona_server.vectorstores import INSTALL_HINT, VectorStoreUnavailable

DB_NAME = "vectorstores.sqlite3"
MMAP_BYTES = 1 << 30  # address space only; pages are the OS's to keep or drop
T = TypeVar("T")


def _connect(path: Path, vec: bool) -> Any:
    if not vec:
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn
    try:
        from persona_server.knowledge import KnowledgeUnavailable
        from persona_server.knowledge.sqlite import connect
    except ImportError as exc:
        raise VectorStoreUnavailable(f"{exc} ({INSTALL_HINT})") from None
    try:
        conn = connect(path)
    except KnowledgeUnavailable as exc:
        raise VectorStoreUnavailable(f"{exc} ({INSTALL_HINT})") from None
    # A KNN search scans every vector of a store: read through a memory map, not SQLite's page cache, it takes
    # half the time (bench/vector_stores.py: 245 -> 120 ms over 100,000 chunks on a loaded machine).
    conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    return conn


class Database:
    """One connection, used by one thread at a time (calls come from worker threads)."""

    def __init__(self, path: Path, *, vec: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode; `transaction()` opens explicit ones. WAL: the `--workers` processes read while one
        # writes; a writer waits for another up to the busy timeout.
        self.conn: Any = _connect(path, vec)
        self.lock = threading.RLock()

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
