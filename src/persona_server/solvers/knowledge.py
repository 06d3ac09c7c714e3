"""`ovos-solver-knowledge-plugin` (alias `knowledge`): answers from your own documents.

Config: `paths` (folders or files; relative ones are taken from the persona file's folder) of `.txt`, `.md`,
`.html` and `.pdf` files; `k` (passages given as grounding context, default 4); `min_score` (default 0.3: the
cosine similarity between the question and the best passage below which there is no answer, so the chain moves
on); `max_chars` of an answer (default 600; whole sentences); bounds `max_files` (1,000), `max_file_size`
(10 MiB), `max_passages` (50,000), `passage_chars` (1,000); `poll_interval` (seconds between checks for changed
files, default 2; 0: never); `embedder` (another embedder, see `persona_server.embedding`; default all-minilm).
`vector_store_ids`: this server's vector stores (`/v1/vector_stores`) to answer from too, with or without
`paths`; they are searched by embedding similarity with the built-in model they were indexed with (see
`vectorstores/retrieval.py`).

In the chain it answers with the best passage (by BM25 and embedding similarity fused, see
`knowledge/retrieval.py`) among the four best whose cosine similarity reaches `min_score`, trimmed to whole
sentences, its source (file, heading, page) in `sources`. In an LLM
solver's `context_solvers` it gives its `k` best passages above `min_score`, each with its source. The index is
shared with every persona naming the same paths (`knowledge/bases.py`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import Field, field_validator

from persona_server import knowledge
from persona_server.knowledge.passages import DEFAULT_PASSAGE_CHARS, excerpt
from persona_server.knowledge.retrieval import Hit, PassageIndex
from persona_server.knowledge.store import Limits
from persona_server.limits import parse_size
from persona_server.query import Answer, Query, Source
from persona_server.solvers.base import Solver, SolverContext, SolverOptions

ANSWER_CANDIDATES = 4


class KnowledgeOptions(SolverOptions):
    paths: list[str] = Field(default_factory=list, max_length=100, description="folders or files to index")
    vector_store_ids: list[str] = Field(default_factory=list, max_length=20,
                                        description="OpenAI-style vector stores of this server to answer from too")
    k: int = Field(default=4, ge=1, le=20, description="passages given as grounding context")
    min_score: float = Field(default=0.3, ge=-1.0, le=1.0,
                             description="least cosine similarity of question and passage for an answer")
    max_chars: int = Field(default=600, ge=20, le=20_000, description="longest answer, in whole sentences")
    max_files: int = Field(default=1000, ge=1, le=100_000)
    max_file_size: int = Field(default=10 * 1024 * 1024, ge=1, description="bytes, or e.g. '10MiB'")
    max_passages: int = Field(default=50_000, ge=1, le=1_000_000)
    passage_chars: int = Field(default=DEFAULT_PASSAGE_CHARS, ge=100, le=10_000)
    poll_interval: float = Field(default=2.0, ge=0, le=3600, description="seconds between checks for changes")
    embedder: dict[str, object] | None = None

    @field_validator("max_file_size", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        return parse_size(value) if isinstance(value, str) else value


class KnowledgeSolver(Solver):
    name = "ovos-solver-knowledge-plugin"
    aliases = ("knowledge",)
    description = "Searches your own documents (text, markdown, HTML and PDF files)."
    # Not started before its turn: embedding the question is CPU work (one batch at a time per process), which a
    # speculative start would spend on every request that an earlier solver answers.
    speculative = False
    default_timeout = 10.0
    Options = KnowledgeOptions
    options: KnowledgeOptions

    def __init__(self, options: SolverOptions, context: SolverContext) -> None:
        super().__init__(options, context)
        missing = knowledge.missing_modules()
        if missing:
            raise ValueError(f"the knowledge solver needs {', '.join(missing)}: {knowledge.EXTRA_HINT}")
        if not self.options.paths and not self.options.vector_store_ids:
            raise ValueError("the knowledge solver needs 'paths' (folders or files to answer from) or "
                             "'vector_store_ids'")
        base = context.base_dir
        self.roots = sorted({(base / Path(p).expanduser()).resolve() for p in self.options.paths})
        self.indexes: list[PassageIndex] = []
        self._bases: list[object] = []

    async def load(self) -> None:
        from persona_server.embedding import embedder_from_config
        from persona_server.knowledge import bases

        o = self.options
        if o.vector_store_ids:
            from persona_server.vectorstores.retrieval import VectorStoreIndex

            self.indexes.append(VectorStoreIndex(o.vector_store_ids))
        if not self.roots:
            return
        embedder = embedder_from_config(self.options.embedder, self.context)
        limits = Limits(max_files=o.max_files, max_file_bytes=o.max_file_size, max_passages=o.max_passages,
                        passage_chars=o.passage_chars)
        base = await bases.acquire(self.roots, embedder, limits, o.poll_interval)
        self._bases.append(base)
        assert base.index is not None
        self.indexes.append(base.index)

    async def close(self) -> None:
        from persona_server.knowledge import bases

        for base in self._bases:
            await bases.release(base)  # type: ignore[arg-type]
        self._bases.clear()
        self.indexes.clear()

    async def search(self, question: str, k: int) -> list[Hit]:
        """The best `k` passages of every index; from several indexes, by cosine similarity."""
        if not question.strip() or not self.indexes:
            return []
        if len(self.indexes) == 1:
            return await self.indexes[0].search(question, k)
        found = await asyncio.gather(*(index.search(question, k) for index in self.indexes))
        return sorted((hit for hits in found for hit in hits), key=lambda hit: -hit.score)[:k]

    async def answer(self, query: Query) -> Answer | None:
        # The best-ranked of the few best passages that is close enough in meaning: a passage ranked first for
        # its words alone does not hide a good one ranked second.
        hits = [hit for hit in await self.search(query.question, ANSWER_CANDIDATES)
                if hit.score >= self.options.min_score]
        if not hits:
            return None
        best = hits[0]
        return Answer(text=excerpt(best.text, query.question, self.options.max_chars), sources=[best.source])

    async def grounding_context(self, query: Query) -> Answer | None:
        """The `k` best passages above `min_score`, for an LLM to answer from (see `solvers/grounding.py`)."""
        hits = [hit for hit in await self.search(query.question, self.options.k) if hit.score >= self.options.min_score]
        if not hits:
            return None
        text = "\n\n".join(f"From {hit.source.title}:\n{hit.text}" for hit in hits)
        sources: list[Source] = []
        for hit in hits:
            if hit.source not in sources:
                sources.append(hit.source)
        return Answer(text=text, sources=sources)
