"""Attaching a file to a vector store: extract its text, chunk it, embed the chunks, store them. In the
background, one file at a time per process (embedding is CPU-bound; the embedder itself runs one batch at a
time), so an attach request answers at once and the chat routes keep their core.

A job left `in_progress` by a process that died (a restart) is claimed and redone by the next process to open the
database: its partial chunks are dropped first, the bytes are on disk.

Each chunk gets one vector: the mean of its windows' embeddings (renormalised), because the embedding model reads
at most 256 word pieces and a chunk has up to 800 tokens by default (4096 at most); a chunk's later sentences would
otherwise not count at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import numpy as np

from persona_server.vectorstores.backend import Chunk, VectorBackend
from persona_server.vectorstores.chunking import Strategy, chunk_spans, windows
from persona_server.vectorstores.extract import KINDS, Kind, extract_text
from persona_server.vectorstores.metadata import Metadata

log = logging.getLogger(__name__)

# Approximate tokens per embedded window: comfortably under the model's 256 word pieces.
WINDOW_TOKENS = 128
# Chunks embedded and stored together (their windows go to the embedder in one call).
CHUNK_BATCH = 16

Embed = Callable[[list[str]], Awaitable[np.ndarray]]


class JobFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Indexer:
    metadata: Metadata
    backend: VectorBackend
    embed: Embed
    dimensions: Callable[[], int]
    file_path: Callable[[str], Path]
    max_chunks_per_file: int
    # Held around every write to the vector database and by deletions, so a store or file deleted while its
    # file is being indexed gets no chunks written after the deletion.
    write_lock: asyncio.Lock

    def __post_init__(self) -> None:
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._done: dict[tuple[str, str], asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="vector-store indexer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def submit(self, store_id: str, file_id: str) -> asyncio.Event:
        key = (store_id, file_id)
        event = self._done.get(key)
        if event is None:
            event = self._done[key] = asyncio.Event()
            self._queue.put_nowait(key)
        return event

    async def _run(self) -> None:
        while True:
            key = await self._queue.get()
            try:
                await self._index(*key)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Our bug, not the file's: say so on the file, keep serving the queue.
                log.exception("indexing %s into %s failed", key[1], key[0])
                await self._finish(*key, "failed", 0, {"code": "server_error",
                                                       "message": "The server had an error indexing this file."})
            finally:
                event = self._done.pop(key, None)
                if event is not None:
                    event.set()

    async def _finish(self, store_id: str, file_id: str, status: str, usage: int,
                      error: dict[str, str] | None = None) -> None:
        await anyio.to_thread.run_sync(self.metadata.finish, store_id, file_id, status, usage, error)

    async def _index(self, store_id: str, file_id: str) -> None:
        row = await anyio.to_thread.run_sync(self.metadata.store_file, store_id, file_id)
        file_row = await anyio.to_thread.run_sync(self.metadata.file, file_id)
        if row is None or file_row is None or row[3] != "in_progress":
            return
        strategy = Strategy(row[7], row[8])
        kind = next(kind for kind in KINDS.values() if kind.name == file_row[4])
        try:
            text = await anyio.to_thread.run_sync(self._text, file_id, kind)
            spans = await anyio.to_thread.run_sync(self._spans, text, strategy)
        except JobFailed as failure:
            await self._finish(store_id, file_id, "failed", 0, {"code": failure.code, "message": failure.message})
            return
        async with self.write_lock:
            # Chunks of an interrupted earlier run of this job.
            await anyio.to_thread.run_sync(self.backend.delete_file, store_id, file_id)
            await anyio.to_thread.run_sync(self.backend.create_collection, store_id, self.dimensions())
        usage = 0
        for start in range(0, len(spans), CHUNK_BATCH):
            chunks = [Chunk(file_id, position, text[a:b])
                      for position, (a, b) in enumerate(spans[start:start + CHUNK_BATCH], start)]
            vectors = await self._embed_chunks([chunk.text for chunk in chunks])
            async with self.write_lock:
                if await anyio.to_thread.run_sync(self.metadata.store_file, store_id, file_id) is None:
                    return  # detached or deleted meanwhile; the deletion removed what was written
                await anyio.to_thread.run_sync(self.backend.add, store_id, chunks, vectors)
            usage += sum(len(chunk.text.encode()) for chunk in chunks) + vectors.nbytes
        await self._finish(store_id, file_id, "completed", usage)

    def _text(self, file_id: str, kind: Kind) -> str:
        try:
            return extract_text(self.file_path(file_id), kind)
        except Exception as exc:
            raise JobFailed("invalid_file", f"The file's text could not be read: {exc}") from None

    def _spans(self, text: str, strategy: Strategy) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for span in chunk_spans(text, strategy):
            if len(spans) == self.max_chunks_per_file:
                raise JobFailed("invalid_file", f"The file has more than {self.max_chunks_per_file} chunks of "
                                f"{strategy.max_tokens} tokens, the most this server indexes per file.")
            spans.append(span)
        if not spans:
            raise JobFailed("invalid_file", "No text could be extracted from the file.")
        return spans

    async def _embed_chunks(self, texts: list[str]) -> np.ndarray:
        pieces = [windows(text, WINDOW_TOKENS) for text in texts]
        flat = [window for chunk in pieces for window in chunk]
        vectors = await self.embed(flat)
        means = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        start = 0
        for row, chunk in enumerate(pieces):
            means[row] = vectors[start:start + len(chunk)].mean(axis=0)
            start += len(chunk)
        norms = np.linalg.norm(means, axis=1, keepdims=True)
        return means / np.maximum(norms, 1e-12)
