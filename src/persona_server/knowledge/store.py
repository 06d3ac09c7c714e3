"""The index database: one SQLite file (with sqlite-vec) per set of indexed paths, under the cache directory.

Tables: `files` (path, mtime, size, content hash, passage count, why it was skipped), `passages` (text, heading
path, page), `passage_vectors` (a `vec0` table; rowid = passage id) and `meta` (the paths, the embedder, and a
`generation` counter bumped by every commit that changes passages, so readers know when to rebuild BM25).

Every method here blocks: callers run them in worker threads. Writes go through one connection, each file's
update in one `BEGIN IMMEDIATE` transaction (SQLite lets one writer in at a time, across processes too); readers
use their own connection per thread and, in WAL mode, see each update whole or not at all. Several processes
(`--workers`) may notice the same change: the writer re-checks the stored hash inside its transaction, so the
second one writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from persona_server.knowledge import sqlite as knowledge_sqlite
from persona_server.knowledge.documents import SUFFIXES, UnreadableDocument, read_sections
from persona_server.knowledge.passages import DEFAULT_PASSAGE_CHARS, Passage, split_sections

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
# Bump when documents.py or passages.py split files differently: existing indexes are then rebuilt.
SPLITTING_VERSION = "3"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one knowledge base indexes; what is beyond them is skipped (and logged)."""

    max_files: int = 1000
    max_file_bytes: int = 10 * 1024 * 1024
    max_passages: int = 50_000
    passage_chars: int = DEFAULT_PASSAGE_CHARS


@dataclass(frozen=True, slots=True)
class FileState:
    path: str
    mtime_ns: int
    size: int


@dataclass(slots=True)
class Prepared:
    """A changed file, read and split, waiting for its vectors."""

    state: FileState
    sha256: str
    passages: list[Passage] = field(default_factory=list)
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What a scan found: files to (re)index, rows of files gone, and the passages of the files left alone."""

    changed: list[FileState]
    removed: list[int]
    kept_passages: int
    stored_hashes: dict[str, str]


@dataclass(frozen=True, slots=True)
class StoredPassage:
    id: int
    text: str
    heading: tuple[str, ...]
    page: int | None
    path: str


def index_text(heading: Sequence[str], text: str) -> str:
    """What BM25 and the embedder see of a passage: its heading path gives words the text may leave implicit."""
    return f"{' / '.join(heading)}\n{text}" if heading else text


class PassageStore:
    def __init__(self, path: Path, *, roots: Sequence[Path], embedder: str, dimensions: int,
                 limits: Limits = Limits()) -> None:
        self.path = path
        self.roots = list(roots)
        self.limits = limits
        self.dimensions = dimensions
        self._readers = threading.local()
        self._all_readers: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._writer = knowledge_sqlite.connect(path)
        self._create(embedder)

    # -- schema ---------------------------------------------------------------------------------------------

    def _create(self, embedder: str) -> None:
        db = self._writer
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("""CREATE TABLE IF NOT EXISTS files (
                id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, mtime_ns INTEGER NOT NULL,
                size INTEGER NOT NULL, sha256 TEXT NOT NULL, passages INTEGER NOT NULL, problem TEXT)""")
            db.execute("""CREATE TABLE IF NOT EXISTS passages (
                id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
                ordinal INTEGER NOT NULL, heading TEXT NOT NULL, page INTEGER, text TEXT NOT NULL)""")
            db.execute("CREATE INDEX IF NOT EXISTS passages_file ON passages(file_id)")
            db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS passage_vectors "
                       f"USING vec0(embedding float[{self.dimensions}])")
            wanted = {"schema": SCHEMA_VERSION, "embedder": embedder, "dimensions": str(self.dimensions),
                      "paths": json.dumps([str(p) for p in self.roots])}
            stored = dict(db.execute("SELECT key, value FROM meta").fetchall())
            for key in ("schema", "embedder", "dimensions"):
                if key in stored and stored[key] != wanted[key]:
                    raise RuntimeError(f"{self.path} was built with {key} {stored[key]!r}, not {wanted[key]!r}; "
                                       "delete it to rebuild")
            for key, value in wanted.items():
                db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
            # Passages made by other splitting code or another passage size: index every file again.
            splitting = f"{SPLITTING_VERSION}:{self.limits.passage_chars}"
            if stored.get("splitting") != splitting:
                db.execute("DELETE FROM passage_vectors")
                db.execute("DELETE FROM passages")
                db.execute("DELETE FROM files")
                db.execute("INSERT OR REPLACE INTO meta VALUES ('splitting', ?)", (splitting,))
                self._bump(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            for conn in [self._writer, *self._all_readers]:
                conn.close()
            self._all_readers.clear()

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            conn = self._readers.conn = knowledge_sqlite.connect(self.path)
            with self._lock:
                self._all_readers.append(conn)
        return conn

    # -- finding changes ------------------------------------------------------------------------------------

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _walk(self) -> Iterator[Path]:
        for root in self.roots:
            if root.is_file():
                yield root
            elif root.is_dir():
                for folder, dirs, files in os.walk(root):  # symlinked folders are not followed: no loops
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    for name in sorted(files):
                        if not name.startswith(".") and Path(name).suffix.lower() in SUFFIXES:
                            yield Path(folder, name)
            else:
                self._warn_once(f"missing:{root}", "knowledge: %s does not exist (yet); it is indexed once it does",
                                root)

    def scan(self) -> Plan:
        found: dict[str, FileState] = {}
        for path in self._walk():
            if len(found) >= self.limits.max_files:
                self._warn_once("max_files", "knowledge: more than %d files under %s; the rest are not indexed",
                                self.limits.max_files, ", ".join(map(str, self.roots)))
                break
            try:
                stat = path.stat()
            except OSError:
                continue  # removed while we looked
            key = str(path)
            if key not in found:
                found[key] = FileState(key, stat.st_mtime_ns, stat.st_size)
        rows = self._reader().execute("SELECT id, path, mtime_ns, size, sha256, passages FROM files").fetchall()
        stored = {path: (id_, mtime, size, sha, n) for id_, path, mtime, size, sha, n in rows}
        removed = [row[0] for path, row in stored.items() if path not in found]
        changed: list[FileState] = []
        kept = 0
        for key, state in found.items():
            row = stored.get(key)
            if row is not None and (row[1], row[2]) == (state.mtime_ns, state.size):
                kept += row[4]
            else:
                changed.append(state)
        return Plan(changed, removed, kept, {path: row[3] for path, row in stored.items()})

    def prepare(self, state: FileState, budget: int) -> Prepared:
        """Read and split a changed file, keeping at most `budget` passages."""
        path = Path(state.path)
        if state.size > self.limits.max_file_bytes:
            return Prepared(state, "", problem=f"larger than {self.limits.max_file_bytes} bytes")
        try:
            with path.open("rb") as file:
                data = file.read(self.limits.max_file_bytes + 1)
        except OSError as exc:
            return Prepared(state, "", problem=f"unreadable: {exc.strerror or exc}")
        if len(data) > self.limits.max_file_bytes:
            return Prepared(state, "", problem=f"larger than {self.limits.max_file_bytes} bytes")
        # The state as read: a file that grew since the scan is recorded as it is now.
        state = FileState(state.path, state.mtime_ns, len(data))
        sha = hashlib.sha256(data).hexdigest()
        try:
            passages = list(split_sections(read_sections(path, data), self.limits.passage_chars))
        except UnreadableDocument as exc:
            return Prepared(state, sha, problem=str(exc))
        problem = None
        if len(passages) > budget:
            problem = f"only {budget} of its {len(passages)} passages indexed: max_passages reached"
            passages = passages[:max(0, budget)]
        return Prepared(state, sha, passages, problem)

    # -- writing --------------------------------------------------------------------------------------------

    def write(self, prepared: Prepared, vectors: Sequence[bytes]) -> bool:
        """Replace a file's passages in one transaction. False when another process already had (no change)."""
        if prepared.problem:
            self._warn_once(f"{prepared.state.path}:{prepared.sha256}:{prepared.problem}",
                            "knowledge: %s: %s", prepared.state.path, prepared.problem)
        state = prepared.state
        with self._lock:
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT id, sha256 FROM files WHERE path = ?", (state.path,)).fetchone()
                if row is not None and row[1] == prepared.sha256 and prepared.sha256:
                    db.execute("UPDATE files SET mtime_ns = ?, size = ? WHERE id = ?",
                               (state.mtime_ns, state.size, row[0]))
                    db.execute("COMMIT")
                    return False
                if row is not None:
                    self._delete_passages(db, [row[0]])
                    db.execute("UPDATE files SET mtime_ns = ?, size = ?, sha256 = ?, passages = ?, problem = ? "
                               "WHERE id = ?", (state.mtime_ns, state.size, prepared.sha256,
                                                len(prepared.passages), prepared.problem, row[0]))
                    file_id = row[0]
                else:
                    cursor = db.execute("INSERT INTO files (path, mtime_ns, size, sha256, passages, problem) "
                                        "VALUES (?, ?, ?, ?, ?, ?)", (state.path, state.mtime_ns, state.size,
                                                                      prepared.sha256, len(prepared.passages),
                                                                      prepared.problem))
                    file_id = cursor.lastrowid
                for ordinal, (passage, vector) in enumerate(zip(prepared.passages, vectors, strict=True)):
                    cursor = db.execute(
                        "INSERT INTO passages (file_id, ordinal, heading, page, text) VALUES (?, ?, ?, ?, ?)",
                        (file_id, ordinal, json.dumps(passage.heading, ensure_ascii=False), passage.page,
                         passage.text))
                    db.execute("INSERT INTO passage_vectors (rowid, embedding) VALUES (?, ?)",
                               (cursor.lastrowid, vector))
                self._bump(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return True

    def remove(self, file_ids: Sequence[int]) -> None:
        if not file_ids:
            return
        with self._lock:
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                self._delete_passages(db, file_ids)
                db.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in file_ids])
                self._bump(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @staticmethod
    def _delete_passages(db: sqlite3.Connection, file_ids: Sequence[int]) -> None:
        for file_id in file_ids:
            # vec0 tables know nothing of foreign keys: their rows go first, by the passages' ids.
            db.execute("DELETE FROM passage_vectors WHERE rowid IN (SELECT id FROM passages WHERE file_id = ?)",
                       (file_id,))
            db.execute("DELETE FROM passages WHERE file_id = ?", (file_id,))

    @staticmethod
    def _bump(db: sqlite3.Connection) -> None:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    # -- reading --------------------------------------------------------------------------------------------

    def generation(self) -> int:
        row = self._reader().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def corpus(self) -> tuple[int, list[int], list[str]]:
        """The generation and every passage (ids, index texts), read in one snapshot."""
        db = self._reader()
        db.execute("BEGIN")
        try:
            generation = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
            rows = db.execute("SELECT id, heading, text FROM passages ORDER BY id").fetchall()
        finally:
            db.execute("COMMIT")
        return generation, [r[0] for r in rows], [index_text(json.loads(r[1]), r[2]) for r in rows]

    def nearest(self, vector: bytes, k: int) -> list[tuple[int, float]]:
        """The `k` passages nearest a unit vector: (id, cosine similarity), best first."""
        rows = self._reader().execute(
            "SELECT rowid, distance FROM passage_vectors WHERE embedding MATCH ? AND k = ?", (vector, k)).fetchall()
        # Unit vectors: |a - b|^2 = 2 - 2 cos(a, b).
        return [(int(rowid), 1.0 - distance * distance / 2.0) for rowid, distance in rows]

    def cosines(self, ids: Sequence[int], vector: bytes) -> dict[int, float]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._reader().execute(
            f"SELECT rowid, vec_distance_cosine(embedding, ?) FROM passage_vectors WHERE rowid IN ({marks})",
            (vector, *ids)).fetchall()
        return {int(rowid): 1.0 - distance for rowid, distance in rows}

    def fetch(self, ids: Sequence[int]) -> dict[int, StoredPassage]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._reader().execute(
            "SELECT passages.id, passages.text, passages.heading, passages.page, files.path FROM passages "
            f"JOIN files ON files.id = passages.file_id WHERE passages.id IN ({marks})", tuple(ids)).fetchall()
        return {r[0]: StoredPassage(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4]) for r in rows}

    def counts(self) -> tuple[int, int]:
        """(files, passages) indexed."""
        row = self._reader().execute("SELECT count(*), coalesce(sum(passages), 0) FROM files").fetchone()
        return int(row[0]), int(row[1])
