"""Knowledge bases: one per set of indexed paths (and embedder), shared by every persona of a process that
names the same paths, and by every process through its database file.

A base indexes its files when first acquired, then polls their modification times every `poll_interval`
seconds (a stat per file: cheap at the bounded file count, and it needs no watcher): an added or changed file is
read, split, embedded and written in one transaction, a removed one dropped, the others left alone. The first
persona to acquire a base sets its limits and polling; later ones share it as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from persona_server.cache import cache_dir
from persona_server.knowledge.retrieval import HybridIndex
from persona_server.knowledge.store import Limits, PassageStore, Prepared, index_text

if TYPE_CHECKING:
    from persona_server.embedding import Embedder

log = logging.getLogger(__name__)

T = TypeVar("T")

# Texts handed to the embedder at once: bounds the memory of one file's vectors in flight.
EMBED_BATCH = 256


def database_path(roots: Sequence[Path], embedder: Embedder) -> Path:
    """The database file of a path set: named by a hash of the resolved paths and the embedder."""
    key = json.dumps({"paths": sorted(str(p) for p in roots), "embedder": embedder.name,
                      "dimensions": embedder.dimensions})
    return cache_dir("knowledge") / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.sqlite"


class KnowledgeBase:
    def __init__(self, roots: Sequence[Path], embedder: Embedder, limits: Limits, poll_interval: float) -> None:
        self.roots = list(roots)
        self.embedder = embedder
        self.limits = limits
        self.poll_interval = poll_interval
        self.users = 0
        self.store: PassageStore | None = None
        self.index: HybridIndex | None = None
        self._started: asyncio.Future[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._sync_lock = asyncio.Lock()
        self._closing = False
        # One writer thread per base: a sync never competes with itself for SQLite's write lock.
        self._writer: anyio.CapacityLimiter | None = None

    async def _write(self, func: Callable[..., T], *args: Any) -> T:
        if self._writer is None:
            self._writer = anyio.CapacityLimiter(1)
        return await anyio.to_thread.run_sync(func, *args, limiter=self._writer)

    @staticmethod
    async def _read(func: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(func, *args)

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def ready(self) -> None:
        """Open the database and index what changed since it was last used (once, however many wait)."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        if not self.embedder.dimensions:
            await self.embedder.embed(["width"])  # an upstream embedder learns its width on its first call
        path = database_path(self.roots, self.embedder)
        self.store = await self._write(lambda: PassageStore(
            path, roots=self.roots, embedder=self.embedder.name, dimensions=self.embedder.dimensions,
            limits=self.limits))
        self.index = HybridIndex(self.store, self.embedder, self._read)
        await self.sync()
        files, passages = await self._read(self.store.counts)
        log.info("knowledge: %d passages from %d files of %s (%s)", passages, files,
                 ", ".join(map(str, self.roots)), path)
        if self.poll_interval > 0:
            self._poller = asyncio.create_task(self._poll(), name="knowledge poll")

    async def _poll(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.sync()
            except Exception as exc:
                log.warning("knowledge: updating the index of %s failed: %s: %s", ", ".join(map(str, self.roots)),
                            type(exc).__name__, exc)

    async def close(self) -> None:
        self._closing = True
        for task in (self._poller, self._started):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        async with self._sync_lock:  # a sync under way stops after its current file
            if self.store is not None:
                await self._write(self.store.close)

    # -- keeping in step with the files ---------------------------------------------------------------------

    async def sync(self) -> bool:
        """Index added and changed files, drop removed ones. True when the passages changed."""
        assert self.store is not None and self.index is not None
        store = self.store
        async with self._sync_lock:
            if self._closing:
                return False
            plan = await self._read(store.scan)
            changed = bool(plan.removed)
            await self._write(store.remove, plan.removed)
            used = plan.kept_passages
            for state in plan.changed:
                if self._closing:
                    break
                prepared = await self._read(store.prepare, state, self.limits.max_passages - used)
                used += len(prepared.passages)
                if prepared.sha256 and plan.stored_hashes.get(state.path) == prepared.sha256:
                    await self._write(store.write, prepared, [])  # touched, not changed
                    continue
                try:
                    vectors = await self._vectors(prepared)
                except Exception as exc:  # an upstream embedder failing: try again at the next poll
                    log.warning("knowledge: cannot embed %s now: %s: %s", state.path, type(exc).__name__, exc)
                    continue
                changed = await self._write(store.write, prepared, vectors) or changed
            if changed:
                await self.index.refresh()
            return changed

    async def _vectors(self, prepared: Prepared) -> list[bytes]:
        texts = [index_text(p.heading, p.text) for p in prepared.passages]
        rows: list[bytes] = []
        for start in range(0, len(texts), EMBED_BATCH):
            vectors = await self.embedder.embed(texts[start:start + EMBED_BATCH])
            rows.extend(vector.tobytes() for vector in vectors)
        return rows


# -- sharing --------------------------------------------------------------------------------------------------

_bases: dict[tuple[tuple[str, ...], str], KnowledgeBase] = {}


async def acquire(roots: Sequence[Path], embedder: Embedder, limits: Limits, poll_interval: float) -> KnowledgeBase:
    """The base of these paths, made ready; every `acquire` is paired with a `release`."""
    key = (tuple(sorted(str(p) for p in roots)), embedder.name)
    base = _bases.get(key)
    if base is None:
        base = _bases[key] = KnowledgeBase(roots, embedder, limits, poll_interval)
    base.users += 1
    try:
        await base.ready()
    except BaseException:
        await release(base)
        raise
    return base


async def release(base: KnowledgeBase) -> None:
    base.users -= 1
    if base.users > 0:
        return
    for key, value in list(_bases.items()):
        if value is base:
            del _bases[key]
    await base.close()
