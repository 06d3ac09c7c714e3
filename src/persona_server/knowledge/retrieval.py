"""Hybrid retrieval: BM25 (`bm25s`) and embedding KNN (`sqlite-vec`), fused by reciprocal rank.

Each ranking contributes 1 / (60 + rank) for every passage it lists (Cormack et al.'s RRF with their k = 60), so
a passage both rankings like beats one only one of them likes, and neither ranking's score scale matters. The
score a `Hit` carries is something else, with a fixed meaning: the cosine similarity of the passage to the
question (-1 to 1; with all-MiniLM-L6-v2, about 0.5 and up for a passage that answers, under 0.2 for an unrelated
one). That is what `min_score` is compared with.

BM25 lives in memory, rebuilt from the passages table when its generation changes. At the bounded size (50,000
passages by default) that takes a second or two (`bench/knowledge.py`) and happens only after files changed,
in a worker thread, while the previous one keeps serving. An incremental BM25 would have to re-weight every
document's terms anyway when the collection changes (IDF and average length move), so a rebuild is not waste.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from persona_server.query import Source

if TYPE_CHECKING:
    from persona_server.embedding import Embedder
    from persona_server.knowledge.store import PassageStore, StoredPassage

log = logging.getLogger(__name__)

T = TypeVar("T")
RunBlocking = Callable[..., Awaitable[Any]]

TITLE_SEPARATOR = " > "  # "manual.md > Setup > Cleaning"
RRF_K = 60
# How deep each ranking is read before fusing: enough that a passage ranked well by one only is still seen.
MIN_CANDIDATES = 20


@dataclass(frozen=True, slots=True)
class Hit:
    """A passage found for a question: its text, where it is from, and its cosine similarity to the question."""

    text: str
    source: Source
    score: float


class PassageIndex(Protocol):
    """Anything the knowledge solver can answer from: the best `k` passages for a question, best first."""

    async def search(self, query: str, k: int) -> list[Hit]: ...


def source_of(passage: StoredPassage) -> Source:
    """Title: the file name, then the heading path or the page; URL: the file's `file://` URI (`#page=N`)."""
    path = Path(passage.path)
    parts = [path.name, *passage.heading]
    if passage.page is not None:
        parts.append(f"page {passage.page}")
    url = path.as_uri() + (f"#page={passage.page}" if passage.page is not None else "")
    return Source(TITLE_SEPARATOR.join(parts), url)


def fuse(*rankings: list[int]) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of id rankings (best first): (id, fused score), best first; ties keep first seen."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


def _stemmer() -> Any:
    """English Snowball stemming (PyStemmer), so "cleaning" finds "clean"; None without PyStemmer."""
    try:
        import Stemmer  # type: ignore[import-not-found]
    except ImportError:
        return None
    return Stemmer.Stemmer("english")


class _BM25:
    """One BM25 index over one generation of the passages table."""

    def __init__(self, generation: int, ids: list[int], texts: list[str]) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
        self.generation = generation
        self.ids = ids
        self.stemmer = _stemmer()
        self.retriever: Any = None
        if texts:
            tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self.stemmer, show_progress=False)
            self.retriever = bm25s.BM25()
            self.retriever.index(tokens, show_progress=False)

    def rank(self, query: str, n: int) -> list[int]:
        if self.retriever is None:
            return []
        import bm25s
        import numpy as np

        words = bm25s.tokenize([query], stopwords="en", stemmer=self.stemmer, return_ids=False,
                               show_progress=False)[0]
        known = [w for w in words if w in self.retriever.vocab_dict]
        if not known:
            return []
        scores = self.retriever.get_scores(known)
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [self.ids[i] for i in top if scores[i] > 0]


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("knowledge: rebuilding BM25 failed: %s", future.exception())


class HybridIndex:
    """The `PassageIndex` of a `PassageStore`: BM25 and vector rankings fused, cosine scores attached."""

    def __init__(self, store: PassageStore, embedder: Embedder, run_blocking: RunBlocking) -> None:
        self.store = store
        self.embedder = embedder
        self._run_blocking = run_blocking
        self._bm25: _BM25 | None = None
        self._rebuild_lock = threading.Lock()
        self._rebuilding: asyncio.Future[None] | None = None

    def _refresh_bm25(self) -> None:
        """Rebuild BM25 if the passages changed since it was built (blocking)."""
        with self._rebuild_lock:
            current = self._bm25
            if current is not None and current.generation == self.store.generation():
                return
            self._bm25 = _BM25(*self.store.corpus())

    async def refresh(self) -> None:
        """Bring BM25 up to date (in a worker thread); concurrent callers share one rebuild."""
        if self._rebuilding is None or self._rebuilding.done():
            self._rebuilding = asyncio.ensure_future(self._run_blocking(self._refresh_bm25))
        await asyncio.shield(self._rebuilding)

    def _search(self, query: str, vector: bytes, k: int) -> tuple[list[Hit], bool]:
        """The hits, and whether BM25 was out of date (it served anyway: the vectors are never stale)."""
        if self._bm25 is None:
            self._refresh_bm25()
        bm25 = self._bm25
        assert bm25 is not None
        stale = bm25.generation != self.store.generation()
        depth = max(MIN_CANDIDATES, 5 * k)
        lexical = bm25.rank(query, depth)
        semantic = self.store.nearest(vector, depth)
        fused = fuse(lexical, [item for item, _ in semantic])
        chosen = fused[: k + 4]  # a few spare: a passage may be gone by the time it is read
        cosine = dict(semantic)
        cosine.update(self.store.cosines([item for item, _ in chosen if item not in cosine], vector))
        # Equal fused scores (each ranking put the other's first second) go to the closer meaning.
        chosen.sort(key=lambda pair: (-round(pair[1], 12), -cosine.get(pair[0], -1.0)))
        passages = self.store.fetch([item for item, _ in chosen])
        hits = [Hit(passages[i].text, source_of(passages[i]), cosine.get(i, -1.0)) for i, _ in chosen if i in passages]
        return hits[:k], stale

    async def search(self, query: str, k: int) -> list[Hit]:
        vector = (await self.embedder.embed([query]))[0]
        hits, stale = await self._run_blocking(self._search, query, vector.tobytes(), k)
        if stale and (self._rebuilding is None or self._rebuilding.done()):
            # Another process changed the passages: rebuild for the next question, in the background.
            self._rebuilding = asyncio.ensure_future(self._run_blocking(self._refresh_bm25))
            self._rebuilding.add_done_callback(_log_failure)
        return hits  # type: ignore[no-any-return]
