"""What is known about files, vector stores and their files, in the SQLite database, and the JSON objects
OpenAI's API answers with for each (`FileObject`, `VectorStore`, `VectorStoreFile`).

Every method blocks: the service calls them in a worker thread. Lists are ordered by insertion (`seq`), which
is `created_at` order without ties, and paged by cursor (`after` / `before` an id), as OpenAI pages them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from persona_server.vectorstores.chunking import Strategy
from persona_server.vectorstores.db import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    kind TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vector_stores (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    metadata TEXT,
    created_at INTEGER NOT NULL,
    last_active_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS store_files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id TEXT NOT NULL REFERENCES vector_stores (id) ON DELETE CASCADE,
    file_id TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    usage_bytes INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    attributes TEXT,
    max_tokens INTEGER NOT NULL,
    overlap INTEGER NOT NULL,
    worker INTEGER,
    UNIQUE (store_id, file_id)
);
CREATE INDEX IF NOT EXISTS store_files_by_file ON store_files (file_id);
CREATE INDEX IF NOT EXISTS store_files_by_status ON store_files (status);
"""

Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class Page:
    """Cursor paging, as the client asked: `limit` items after (or before) an id, in `order`."""

    limit: int = 20
    order: Order = "desc"
    after: str | None = None
    before: str | None = None


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def file_json(row: tuple[Any, ...]) -> dict[str, Any]:
    file_id, filename, purpose, size, _kind, created_at = row
    return {"id": file_id, "object": "file", "bytes": size, "created_at": created_at, "filename": filename,
            "purpose": purpose, "status": "processed", "expires_at": None, "status_details": None}


def store_file_json(row: tuple[Any, ...]) -> dict[str, Any]:
    store_id, file_id, created_at, status, usage, last_error, attributes, max_tokens, overlap = row
    return {"id": file_id, "object": "vector_store.file", "created_at": created_at, "usage_bytes": usage,
            "vector_store_id": store_id, "status": status, "last_error": _loads(last_error),
            "attributes": _loads(attributes) or {}, "chunking_strategy": Strategy(max_tokens, overlap).as_json()}


_FILE_COLUMNS = "id, filename, purpose, bytes, kind, created_at"
_STORE_COLUMNS = "id, name, metadata, created_at, last_active_at"
_STORE_FILE_COLUMNS = ("store_id, file_id, created_at, status, usage_bytes, last_error, attributes, max_tokens, "
                       "overlap")


class Metadata:
    def __init__(self, db: Database) -> None:
        self.db = db
        with db.lock:
            db.conn.executescript(_SCHEMA)

    # -- paging ---------------------------------------------------------------------------------------------

    def _page(self, table: str, columns: str, id_column: str, where: str, params: tuple[Any, ...],
              page: Page) -> tuple[list[tuple[Any, ...]], bool]:
        clauses, args = ([where] if where else []), list(params)
        ascending = page.order == "asc"
        # `before` alone pages towards the cursor from its other side: read in reverse, then turn around.
        backwards = page.before is not None and page.after is None
        for cursor, newer in ((page.after, ascending), (page.before, not ascending)):
            if cursor is not None:
                # An unknown cursor pages from nothing, as a deleted item's id would.
                clauses.append(f"seq {'>' if newer else '<'} coalesce((SELECT seq FROM {table} "
                               f"WHERE {id_column} = ?{' AND ' + where if where else ''}), "
                               f"{'1e18' if newer else '-1'})")
                args += [cursor, *params]
        direction = "ASC" if ascending != backwards else "DESC"
        sql = (f"SELECT {columns} FROM {table}{' WHERE ' + ' AND '.join(clauses) if clauses else ''} "
               f"ORDER BY seq {direction} LIMIT ?")
        rows = self.db.query(sql, (*args, page.limit + 1))
        has_more = len(rows) > page.limit
        rows = rows[:page.limit]
        return (rows[::-1] if backwards else rows), has_more

    # -- files ----------------------------------------------------------------------------------------------

    def add_file(self, file_id: str, filename: str, purpose: str, size: int, kind: str, created_at: int) -> None:
        self.db.run(lambda conn: conn.execute(
            f"INSERT INTO files ({_FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            (file_id, filename, purpose, size, kind, created_at)))

    def file(self, file_id: str) -> tuple[Any, ...] | None:
        rows = self.db.query(f"SELECT {_FILE_COLUMNS} FROM files WHERE id = ?", (file_id,))
        return rows[0] if rows else None

    def files(self, page: Page, purpose: str | None = None) -> tuple[list[tuple[Any, ...]], bool]:
        return self._page("files", _FILE_COLUMNS, "id", "purpose = ?" if purpose else "",
                          (purpose,) if purpose else (), page)

    def count_files(self) -> int:
        return int(self.db.query("SELECT count(*) FROM files")[0][0])

    def stores_of_file(self, file_id: str) -> list[str]:
        return [row[0] for row in self.db.query("SELECT store_id FROM store_files WHERE file_id = ?", (file_id,))]

    def delete_file(self, file_id: str) -> bool:
        return bool(self.db.run(lambda conn: conn.execute("DELETE FROM files WHERE id = ?", (file_id,)).rowcount))

    # -- vector stores --------------------------------------------------------------------------------------

    def add_store(self, store_id: str, name: str, metadata: dict[str, str] | None, created_at: int) -> None:
        self.db.run(lambda conn: conn.execute(
            f"INSERT INTO vector_stores ({_STORE_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            (store_id, name, _dumps(metadata), created_at, created_at)))

    def store(self, store_id: str) -> tuple[Any, ...] | None:
        rows = self.db.query(f"SELECT {_STORE_COLUMNS} FROM vector_stores WHERE id = ?", (store_id,))
        return rows[0] if rows else None

    def stores(self, page: Page) -> tuple[list[tuple[Any, ...]], bool]:
        return self._page("vector_stores", _STORE_COLUMNS, "id", "", (), page)

    def count_stores(self) -> int:
        return int(self.db.query("SELECT count(*) FROM vector_stores")[0][0])

    def touch_store(self, store_id: str, now: int) -> None:
        self.db.run(lambda conn: conn.execute("UPDATE vector_stores SET last_active_at = ? WHERE id = ?",
                                              (now, store_id)))

    def delete_store(self, store_id: str) -> bool:
        return bool(self.db.run(
            lambda conn: conn.execute("DELETE FROM vector_stores WHERE id = ?", (store_id,)).rowcount))

    def store_json(self, row: tuple[Any, ...]) -> dict[str, Any]:
        store_id, name, metadata, created_at, last_active_at = row
        counts = dict.fromkeys(("in_progress", "completed", "failed", "cancelled"), 0)
        usage = 0
        for status, count, used in self.db.query(
                "SELECT status, count(*), sum(usage_bytes) FROM store_files WHERE store_id = ? GROUP BY status",
                (store_id,)):
            counts[status] = count
            usage += used or 0
        return {"id": store_id, "object": "vector_store", "created_at": created_at, "name": name,
                "usage_bytes": usage, "file_counts": {**counts, "total": sum(counts.values())},
                "status": "in_progress" if counts["in_progress"] else "completed",
                "expires_after": None, "expires_at": None, "last_active_at": last_active_at,
                "metadata": _loads(metadata) or {}}

    # -- files of a vector store ------------------------------------------------------------------------------

    def attach(self, store_id: str, file_id: str, created_at: int, attributes: dict[str, Any] | None,
               strategy: Strategy, worker: int) -> bool:
        """Attach a file (status in_progress, claimed by `worker`); False if it was attached already."""
        cursor = self.db.run(lambda conn: conn.execute(
            "INSERT OR IGNORE INTO store_files (store_id, file_id, created_at, status, attributes, max_tokens, "
            "overlap, worker) VALUES (?, ?, ?, 'in_progress', ?, ?, ?, ?)",
            (store_id, file_id, created_at, _dumps(attributes), strategy.max_tokens, strategy.overlap, worker)))
        return bool(cursor.rowcount)

    def store_file(self, store_id: str, file_id: str) -> tuple[Any, ...] | None:
        rows = self.db.query(f"SELECT {_STORE_FILE_COLUMNS} FROM store_files WHERE store_id = ? AND file_id = ?",
                             (store_id, file_id))
        return rows[0] if rows else None

    def store_files(self, store_id: str, page: Page, status: str | None = None,
                    ) -> tuple[list[tuple[Any, ...]], bool]:
        where, params = "store_id = ?", (store_id,)
        if status:
            where, params = where + " AND status = ?", (store_id, status)
        return self._page("store_files", _STORE_FILE_COLUMNS, "file_id", where, params, page)

    def count_store_files(self, store_id: str) -> int:
        return int(self.db.query("SELECT count(*) FROM store_files WHERE store_id = ?", (store_id,))[0][0])

    def attributes(self, store_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
        """file id -> (filename, attributes) for every file of the store: what search results show."""
        rows = self.db.query("SELECT f.id, f.filename, s.attributes FROM store_files AS s "
                             "JOIN files AS f ON f.id = s.file_id WHERE s.store_id = ?", (store_id,))
        return {file_id: (filename, _loads(attributes) or {}) for file_id, filename, attributes in rows}

    def finish(self, store_id: str, file_id: str, status: str, usage: int = 0,
               error: dict[str, str] | None = None) -> None:
        self.db.run(lambda conn: conn.execute(
            "UPDATE store_files SET status = ?, usage_bytes = ?, last_error = ?, worker = NULL "
            "WHERE store_id = ? AND file_id = ?", (status, usage, _dumps(error), store_id, file_id)))

    def detach(self, store_id: str, file_id: str) -> bool:
        return bool(self.db.run(lambda conn: conn.execute(
            "DELETE FROM store_files WHERE store_id = ? AND file_id = ?", (store_id, file_id)).rowcount))

    def claim_orphans(self, worker: int, alive: Callable[[int], bool]) -> list[tuple[str, str]]:
        """Jobs left in progress by a process that is gone (a restart): claimed by `worker`, to be redone."""
        def claim(conn: Any) -> list[tuple[str, str]]:
            rows = conn.execute("SELECT store_id, file_id, worker FROM store_files "
                                "WHERE status = 'in_progress'").fetchall()
            orphans = [(store, file) for store, file, owner in rows if owner is None or not alive(owner)]
            conn.executemany("UPDATE store_files SET worker = ? WHERE store_id = ? AND file_id = ?",
                             [(worker, store, file) for store, file in orphans])
            return orphans

        return self.db.run(claim)
