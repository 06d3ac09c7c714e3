"""The Files and Vector Stores service: what the routes (and the knowledge solver) call. Answers are OpenAI's
JSON objects; a wrong id or a bound reached is an `APIError` with OpenAI's status and code.

Opened lazily by the first request that needs it (the data directory is made only then), or at start-up when the
database already exists, so jobs a previous process left unfinished resume at once. Blocking work (SQLite, the
vector database, text extraction) runs in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from persona_server.api.context import new_id
from persona_server.api.errors import APIError
from persona_server.datadir import data_root
from persona_server.vectorstores import INSTALL_HINT, VectorStoreUnavailable
from persona_server.vectorstores.backend import Hit, VectorBackend
from persona_server.vectorstores.chunking import Strategy
from persona_server.vectorstores.db import DB_NAME, Database
from persona_server.vectorstores.extract import Kind
from persona_server.vectorstores.metadata import Metadata, Page, file_json, store_file_json

if TYPE_CHECKING:
    from persona_server.settings import Settings
    from persona_server.vectorstores.indexer import Indexer

log = logging.getLogger(__name__)

MAX_SEARCH_RESULTS = 50


@dataclass(frozen=True, slots=True)
class Bounds:
    max_upload_bytes: int = 32 * 1024 * 1024
    max_files: int = 10_000
    max_stores: int = 1_000
    max_files_per_store: int = 1_000
    max_chunks_per_file: int = 10_000
    # How long an attach waits for its file to be indexed before answering `in_progress`.
    attach_wait: float = 1.0


def _now() -> int:
    return int(time.time())


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def not_found(kind: str, item_id: str, param: str) -> APIError:
    return APIError(404, f"No {kind} found with id '{item_id}'.", param=param, code="not_found")


def list_json(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, "has_more": has_more}


class VectorStores:
    def __init__(self, data_dir: Path, vector_db: str | None = None, bounds: Bounds | None = None) -> None:
        self.data_dir = data_dir
        self.vector_db = vector_db
        self.bounds = bounds or Bounds()
        self.files_dir = data_dir / "files"
        self.uploads_dir = data_dir / "uploads"  # uploads in progress: moved into files_dir once whole
        self._opened: asyncio.Future[None] | None = None
        self._write_lock = asyncio.Lock()
        self.db: Database
        self.metadata: Metadata
        self.backend: VectorBackend
        self.indexer: Indexer

    # -- life cycle -------------------------------------------------------------------------------------------

    def exists(self) -> bool:
        return (self.data_dir / DB_NAME).exists()

    async def ready(self) -> VectorStores:
        """Open on first use (once, whoever asks first); raises APIError 501 when a package is missing."""
        if self._opened is None:
            self._opened = asyncio.get_running_loop().create_future()
            try:
                await self._open()
            except BaseException as exc:
                self._opened.set_exception(exc)
                self._opened.exception()  # retrieved: no "never retrieved" warning
                raise self._unavailable(exc) from None
            self._opened.set_result(None)
        try:
            await asyncio.shield(self._opened)
        except BaseException as exc:
            raise self._unavailable(exc) from None
        return self

    @staticmethod
    def _unavailable(exc: BaseException) -> BaseException:
        if isinstance(exc, VectorStoreUnavailable | ImportError):
            return APIError(501, f"Files and vector stores are not available: {exc}", code="not_implemented",
                            type="server_error")
        return exc

    async def _open(self) -> None:
        from persona_server.embedding import EmbeddingUnavailable, default_embedder
        from persona_server.vectorstores.indexer import Indexer

        try:
            self.embedder = default_embedder()
        except EmbeddingUnavailable as exc:
            raise VectorStoreUnavailable(f"{exc} ({INSTALL_HINT})") from None
        self.db = await anyio.to_thread.run_sync(lambda: Database(self.data_dir / DB_NAME,
                                                                  vec=self.vector_db is None))
        self.metadata = await anyio.to_thread.run_sync(Metadata, self.db)
        if self.vector_db:
            from persona_server.vectorstores.chroma_backend import ChromaBackend

            self.backend = ChromaBackend(self.vector_db)
        else:
            from persona_server.vectorstores.sqlite_backend import SqliteVecBackend

            self.backend = await anyio.to_thread.run_sync(SqliteVecBackend, self.db)
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        await self._call(_remove_stale_uploads, self.uploads_dir)
        self.indexer = Indexer(self.metadata, self.backend, self.embedder.embed, lambda: self.embedder.dimensions,
                               self.file_path, self.bounds.max_chunks_per_file, self._write_lock)
        self.indexer.start()
        for store_id, file_id in await anyio.to_thread.run_sync(self.metadata.claim_orphans, os.getpid(),
                                                                _pid_alive):
            self.indexer.submit(store_id, file_id)

    async def close(self) -> None:
        if self._opened is None or not self._opened.done() or self._opened.exception() is not None:
            return
        await self.indexer.close()
        await anyio.to_thread.run_sync(self.backend.close)
        await anyio.to_thread.run_sync(self.db.close)

    async def _call(self, function: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(function, *args)

    async def _vectors(self, function: Any, *args: Any) -> Any:
        """A call to the vector database; a Chroma server that is down or failing is a 503, not our bug."""
        try:
            return await self._call(function, *args)
        except VectorStoreUnavailable as exc:
            raise APIError(503, str(exc), code="vector_db_unavailable", type="server_error") from None
        except Exception as exc:
            if self.vector_db is None:
                raise
            log.warning("the Chroma server at %s failed: %s", self.vector_db, exc)
            raise APIError(503, f"The vector database (Chroma at {self.vector_db}) failed: "
                           f"{type(exc).__name__}", code="vector_db_unavailable", type="server_error") from None

    # -- files ----------------------------------------------------------------------------------------------

    def file_path(self, file_id: str) -> Path:
        return self.files_dir / file_id

    async def add_file(self, upload: Path, filename: str, purpose: str, size: int, kind: Kind) -> dict[str, Any]:
        """Keep a whole upload (a temporary file under `uploads_dir`, moved into place) as a new file."""
        if await self._call(self.metadata.count_files) >= self.bounds.max_files:
            raise APIError(400, f"This server keeps at most {self.bounds.max_files} files; delete some first.",
                           code="too_many_files")
        file_id = new_id("file-")
        await self._call(os.replace, upload, self.file_path(file_id))
        await self._call(self.metadata.add_file, file_id, filename, purpose, size, kind.name, _now())
        return file_json(await self._call(self.metadata.file, file_id))

    async def _file_row(self, file_id: str) -> tuple[Any, ...]:
        row = await self._call(self.metadata.file, file_id)
        if row is None:
            raise not_found("file", file_id, "file_id")
        return row  # type: ignore[no-any-return]

    async def get_file(self, file_id: str) -> dict[str, Any]:
        return file_json(await self._file_row(file_id))

    async def file_content(self, file_id: str) -> tuple[Path, str]:
        """The stored bytes' path and the file's media type."""
        from persona_server.vectorstores.extract import KINDS

        row = await self._file_row(file_id)
        media = next(kind.media_type for kind in KINDS.values() if kind.name == row[4])
        return self.file_path(file_id), media

    async def list_files(self, page: Page, purpose: str | None) -> dict[str, Any]:
        rows, more = await self._call(self.metadata.files, page, purpose)
        return list_json([file_json(row) for row in rows], more)

    async def delete_file(self, file_id: str) -> dict[str, Any]:
        """Delete a file, and its chunks from every vector store it is in."""
        await self._file_row(file_id)
        async with self._write_lock:
            for store_id in await self._call(self.metadata.stores_of_file, file_id):
                await self._vectors(self.backend.delete_file, store_id, file_id)
            await self._call(self.metadata.delete_file, file_id)
        with contextlib.suppress(FileNotFoundError):
            await self._call(self.file_path(file_id).unlink)
        return {"id": file_id, "object": "file", "deleted": True}

    # -- vector stores ----------------------------------------------------------------------------------------

    async def create_store(self, name: str, metadata: dict[str, str] | None, file_ids: list[str],
                           strategy: Strategy) -> dict[str, Any]:
        if await self._call(self.metadata.count_stores) >= self.bounds.max_stores:
            raise APIError(400, f"This server keeps at most {self.bounds.max_stores} vector stores; delete some "
                           "first.", code="too_many_vector_stores")
        if len(file_ids) > self.bounds.max_files_per_store:
            raise APIError(400, f"At most {self.bounds.max_files_per_store} files per vector store.",
                           param="file_ids", code="too_many_files")
        for file_id in file_ids:
            await self._file_row(file_id)
        store_id = new_id("vs_")
        await self._call(self.metadata.add_store, store_id, name, metadata, _now())
        waits = [await self._attach(store_id, file_id, None, strategy) for file_id in dict.fromkeys(file_ids)]
        await self._wait(waits)
        return await self.get_store(store_id)

    async def _store_row(self, store_id: str) -> tuple[Any, ...]:
        row = await self._call(self.metadata.store, store_id)
        if row is None:
            raise not_found("vector store", store_id, "vector_store_id")
        return row  # type: ignore[no-any-return]

    async def get_store(self, store_id: str) -> dict[str, Any]:
        return await self._call(self.metadata.store_json, await self._store_row(store_id))  # type: ignore[no-any-return]

    async def list_stores(self, page: Page) -> dict[str, Any]:
        rows, more = await self._call(self.metadata.stores, page)
        return list_json([await self._call(self.metadata.store_json, row) for row in rows], more)

    async def delete_store(self, store_id: str) -> dict[str, Any]:
        await self._store_row(store_id)
        async with self._write_lock:
            await self._call(self.metadata.delete_store, store_id)
            await self._vectors(self.backend.delete_collection, store_id)
        return {"id": store_id, "object": "vector_store.deleted", "deleted": True}

    # -- files of a vector store ------------------------------------------------------------------------------

    async def _attach(self, store_id: str, file_id: str, attributes: dict[str, Any] | None,
                      strategy: Strategy) -> asyncio.Event | None:
        if await self._call(self.metadata.count_store_files, store_id) >= self.bounds.max_files_per_store:
            raise APIError(400, f"At most {self.bounds.max_files_per_store} files per vector store.",
                           param="file_id", code="too_many_files")
        if not await self._call(self.metadata.attach, store_id, file_id, _now(), attributes, strategy,
                                os.getpid()):
            return None  # attached already: as OpenAI does, answer with the existing one
        return self.indexer.submit(store_id, file_id)

    async def _wait(self, events: list[asyncio.Event | None]) -> None:
        pending = [asyncio.ensure_future(event.wait()) for event in events if event is not None]
        if pending:
            _, still = await asyncio.wait(pending, timeout=self.bounds.attach_wait)
            for task in still:
                task.cancel()

    async def attach_file(self, store_id: str, file_id: str, attributes: dict[str, Any] | None,
                          strategy: Strategy) -> dict[str, Any]:
        await self._store_row(store_id)
        await self._file_row(file_id)
        await self._wait([await self._attach(store_id, file_id, attributes, strategy)])
        return await self.get_store_file(store_id, file_id)

    async def get_store_file(self, store_id: str, file_id: str) -> dict[str, Any]:
        row = await self._call(self.metadata.store_file, store_id, file_id)
        if row is None:
            await self._store_row(store_id)
            raise not_found("file", file_id, "file_id")
        return store_file_json(row)

    async def list_store_files(self, store_id: str, page: Page, status: str | None) -> dict[str, Any]:
        await self._store_row(store_id)
        rows, more = await self._call(self.metadata.store_files, store_id, page, status)
        return list_json([store_file_json(row) for row in rows], more)

    async def detach_file(self, store_id: str, file_id: str) -> dict[str, Any]:
        await self.get_store_file(store_id, file_id)
        async with self._write_lock:
            await self._call(self.metadata.detach, store_id, file_id)
            await self._vectors(self.backend.delete_file, store_id, file_id)
        return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}

    # -- search ---------------------------------------------------------------------------------------------

    async def hits(self, store_ids: list[str], queries: list[str], k: int,
                   ) -> list[tuple[str, Hit, str, dict[str, Any]]]:
        """The `k` best chunks over the stores for any of the queries: (store id, hit, filename, attributes),
        best first. What the search route and the knowledge solver share."""
        import numpy as np

        store_ids = [store_id for store_id in store_ids if await self._call(self.metadata.store, store_id)]
        if not store_ids:
            return []
        vectors = await self.embedder.embed(queries)
        best: dict[tuple[str, str, int], tuple[str, Hit]] = {}
        for store_id in store_ids:
            for vector in np.asarray(vectors):
                for hit in await self._vectors(self.backend.search, store_id, vector, k):
                    key = (store_id, hit.file_id, hit.position)
                    if key not in best or best[key][1].score < hit.score:
                        best[key] = (store_id, hit)
        ranked = sorted(best.values(), key=lambda pair: -pair[1].score)[:k]
        files: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
        results = []
        for store_id, hit in ranked:
            if store_id not in files:
                files[store_id] = await self._call(self.metadata.attributes, store_id)
            # A chunk whose file was detached between the search and here is left out.
            if hit.file_id in files[store_id]:
                filename, attributes = files[store_id][hit.file_id]
                results.append((store_id, hit, filename, attributes))
        return results

    async def search(self, store_id: str, queries: list[str], k: int, threshold: float) -> dict[str, Any]:
        await self._store_row(store_id)
        await self._call(self.metadata.touch_store, store_id, _now())
        data = [{"file_id": hit.file_id, "filename": filename, "score": round(hit.score, 6),
                 "attributes": attributes, "content": [{"type": "text", "text": hit.text}]}
                for _, hit, filename, attributes in await self.hits([store_id], queries, k)
                if hit.score >= threshold]
        return {"object": "vector_store.search_results.page", "search_query": queries, "data": data,
                "has_more": False, "next_page": None}



def _remove_stale_uploads(uploads_dir: Path, age: float = 3600) -> None:
    """Uploads a killed process left half-written (not those another `--workers` process is receiving now)."""
    cutoff = time.time() - age
    for path in uploads_dir.iterdir():
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def vector_stores_of(settings: Settings) -> VectorStores:
    """The service a server's settings describe (nothing is opened yet); this process's `current()` one."""
    global _current
    _current = VectorStores(data_root(settings.data_dir), settings.vector_db,
                            Bounds(max_upload_bytes=settings.max_upload_bytes))
    return _current


async def open_existing(stores: VectorStores) -> None:
    """At start-up: open a database that exists, so jobs left unfinished resume; never fail the start."""
    if stores.exists():
        try:
            await stores.ready()
        except Exception as exc:
            log.warning("files and vector stores are not available: %s", getattr(exc, "message", exc))


_current: VectorStores | None = None


def current() -> VectorStores:
    """This process's service: the server's (see `vector_stores_of`), else one on the default data directory and
    `$PERSONA_SERVER_VECTOR_DB` (the CLI's `ask`). What the knowledge solver's `vector_store_ids` search."""
    global _current
    if _current is None:
        _current = VectorStores(data_root(), os.environ.get("PERSONA_SERVER_VECTOR_DB") or None)
    return _current
