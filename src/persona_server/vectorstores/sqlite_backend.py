"""The embedded vector database: `sqlite-vec` tables in the data directory's SQLite file. Nothing to run.

Each collection is one `vec0` virtual table (cosine distance, exact KNN by a scan: a few tens of milliseconds
over 100,000 chunks), whose rowids point into one ordinary `chunks` table holding the text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from persona_server.vectorstores.backend import Chunk, Hit, VectorBackend, score_from_cosine_distance
from persona_server.vectorstores.db import Database

_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    file_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks (collection, file_id);
"""


def _table(collection: str) -> str:
    # Collection names become table names: only our own `vs_<hex>` ids reach here, but never trust that.
    if not _NAME.match(collection):
        raise ValueError(f"invalid collection name {collection!r}")
    return f'"vec_{collection}"'


class SqliteVecBackend(VectorBackend):
    name = "sqlite-vec"

    def __init__(self, db: Database) -> None:
        self.db = db
        with db.lock:
            db.conn.executescript(_SCHEMA)

    def create_collection(self, collection: str, dimensions: int) -> None:
        self.db.run(lambda conn: conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {_table(collection)} "
            f"USING vec0(embedding float[{int(dimensions)}] distance_metric=cosine)"))

    def delete_collection(self, collection: str) -> None:
        def drop(conn: Any) -> None:
            conn.execute(f"DROP TABLE IF EXISTS {_table(collection)}")
            conn.execute("DELETE FROM chunks WHERE collection = ?", (collection,))

        self.db.run(drop)

    def add(self, collection: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        table = _table(collection)
        rows = np.ascontiguousarray(vectors, dtype=np.float32)

        def insert(conn: Any) -> None:
            for chunk, vector in zip(chunks, rows, strict=True):
                cursor = conn.execute(
                    "INSERT INTO chunks (collection, file_id, position, text) VALUES (?, ?, ?, ?)",
                    (collection, chunk.file_id, chunk.position, chunk.text))
                conn.execute(f"INSERT INTO {table} (rowid, embedding) VALUES (?, ?)",
                             (cursor.lastrowid, vector.tobytes()))

        self.db.run(insert)

    def delete_file(self, collection: str, file_id: str) -> None:
        table = _table(collection)

        def delete(conn: Any) -> None:
            if self._exists(collection):
                conn.execute(f"DELETE FROM {table} WHERE rowid IN "
                             "(SELECT id FROM chunks WHERE collection = ? AND file_id = ?)", (collection, file_id))
            conn.execute("DELETE FROM chunks WHERE collection = ? AND file_id = ?",
                         (collection, file_id))

        self.db.run(delete)

    def _exists(self, collection: str) -> bool:
        # A store's table is made when its first file is indexed.
        return bool(self.db.query("SELECT 1 FROM sqlite_master WHERE name = ?", (_table(collection).strip('"'),)))

    def search(self, collection: str, vector: np.ndarray, k: int) -> list[Hit]:
        if not self._exists(collection):
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        rows = self.db.query(
            f"SELECT c.file_id, c.position, c.text, knn.distance FROM "
            f"(SELECT rowid, distance FROM {_table(collection)} WHERE embedding MATCH ? AND k = ?) AS knn "
            f"JOIN chunks AS c ON c.id = knn.rowid ORDER BY knn.distance",
            (query, int(k)))
        return [Hit(file_id, position, text, score_from_cosine_distance(distance))
                for file_id, position, text, distance in rows]

    def count(self, collection: str, file_id: str | None = None) -> int:
        if file_id is None:
            rows = self.db.query("SELECT count(*) FROM chunks WHERE collection = ?", (collection,))
        else:
            rows = self.db.query("SELECT count(*) FROM chunks WHERE collection = ? AND file_id = ?",
                                 (collection, file_id))
        return int(rows[0][0])
