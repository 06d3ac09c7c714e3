"""`persona-solver-mixture`: ask several solvers at once and give the best of their answers.

Config: `workers` (solver names, or inline `{"solver": name, ...config}` objects), `strategy` and, for the
"llm" strategy, `judge` (a solver name or inline object, normally an LLM). Every worker is asked at the same
time, each under its own timeout (or `worker_timeout` when set); the ones that fail, time out or have no answer
are left out. Nothing gathered means no answer: the chain moves on.

Strategies:
- "bm25" (default): the answer most relevant to the question, scored with BM25 (`bm25s`) over the gathered
  answers; ties go to the worker listed first.
- "majority": the most common answer once normalised (case, punctuation and spacing ignored); ties go to the
  answer whose first occurrence comes first.
- "llm": the judge writes the final answer from the question and the gathered answers; its output is
  streamed. A judge that fails or stays silent before its first word gives way to the "bm25" choice.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Literal

from pydantic import Field

from persona_server import secrets
from persona_server.query import Message, Query
from persona_server.solvers import grounding
from persona_server.solvers.base import Piece, Solver, SolverContext, SolverOptions

log = logging.getLogger(__name__)

JUDGE_INSTRUCTION = (
    "Several assistants answered the user's question. Write the single best final answer to the question, "
    "using what is correct in their answers and leaving out what is wrong or irrelevant. Answer the user "
    "directly; do not mention the assistants."
)


class MixtureOptions(SolverOptions):
    workers: list[grounding.SolverRef] = Field(default_factory=list, min_length=1)
    strategy: Literal["bm25", "majority", "llm"] = "bm25"
    judge: grounding.SolverRef | None = None
    worker_timeout: float | None = Field(default=None, gt=0, description="one limit for every worker")


class MixtureSolver(Solver):
    name = "persona-solver-mixture"
    aliases = ("mixture",)
    description = "Asks several solvers at once and answers with the best of their answers."
    chat = True  # workers that are chat-capable get the whole history
    speculative = False  # workers may be LLMs
    default_timeout = 10.0
    default_deadline = 120.0
    Options = MixtureOptions
    options: MixtureOptions

    def __init__(self, options: SolverOptions, context: SolverContext) -> None:
        super().__init__(options, context)
        if self.options.strategy == "llm" and self.options.judge is None:
            raise ValueError("strategy 'llm' needs a 'judge' (an LLM solver)")
        self._workers: list[grounding.Helper] = []
        self._judge: grounding.Helper | None = None

    @property
    def timeout(self) -> float:
        if self.options.timeout is not None:
            return self.options.timeout
        # The first piece comes after the slowest worker (and the judge's first word).
        judge = self._judge.solver.timeout if self._judge else 0.0
        return max(grounding.helpers_budget(self._workers, self.options.worker_timeout), 1.0) + judge

    async def load(self) -> None:
        self._workers = await grounding.load_helpers(self.options.workers, self.context, owner=self.name)
        if not self._workers:
            raise RuntimeError("none of the workers could start")
        if self.options.judge is not None:
            judges = await grounding.load_helpers([self.options.judge], self.context, owner=self.name)
            if not judges:
                raise RuntimeError("the judge could not start")
            self._judge = judges[0]

    async def close(self) -> None:
        for helper in [*self._workers, *([self._judge] if self._judge else [])]:
            await helper.solver.close()

    async def stream(self, query: Query) -> AsyncIterator[Piece]:
        results = await grounding.ask_all(self._workers, query, limit=self.options.worker_timeout)
        if not results:
            return
        if self.options.strategy == "llm" and self._judge is not None:
            judged = False
            async for piece in self._judged(query, results):
                judged = judged or isinstance(piece, str)
                yield piece
            if judged:
                return
        if self.options.strategy == "majority":
            chosen = results[majority(r.text for r in results)]
        else:
            chosen = results[most_relevant(query.question, [r.text for r in results], query.lang_code)]
        for source in chosen.sources:
            yield source
        yield chosen.text

    async def _judged(self, query: Query, results: Sequence[grounding.Result]) -> AsyncIterator[Piece]:
        """The judge's answer, streamed; nothing when it fails before its first word."""
        assert self._judge is not None
        candidates = "\n\n".join(f"Answer {i}: {r.text}" for i, r in enumerate(results, 1))
        prompt = f"Question: {query.question}\n\n{candidates}"
        judge_query = Query(
            messages=[Message("system", JUDGE_INSTRUCTION), *query.history, Message("user", prompt)],
            lang=query.lang, units=query.units, max_tokens=query.max_tokens, temperature=query.temperature,
            top_p=query.top_p, stop=list(query.stop), user=query.user, persona=query.persona,
            conversation=query.conversation_id, timezone=query.timezone,
        )
        solver = self._judge.solver
        if not solver.chat:
            judge_query = judge_query.for_question_solver()
        stream = solver.stream(judge_query)
        held: list[Piece] = []  # sources and blanks before the judge's first word
        started = False
        try:
            while True:
                try:
                    async with asyncio.timeout(solver.timeout):
                        piece = await anext(stream)
                except StopAsyncIteration:
                    break
                if started:
                    yield piece
                    continue
                held.append(piece)
                if isinstance(piece, str) and piece.strip():
                    started = True
                    for early in held:
                        yield early
        except Exception as exc:
            if started:
                raise
            log.warning("persona %r: mixture judge %r gave nothing, choosing by bm25: %s", self.context.persona,
                        self._judge.name, secrets.redact(f"{type(exc).__name__}: {exc}"))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        if started:
            for result in results:
                for source in result.sources:
                    yield source


_PUNCT_SPACE = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Case, accents' composition, punctuation and spacing ignored: "Paris." == "paris"."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _PUNCT_SPACE.sub(" ", text).strip()


def majority(texts: Iterable[str]) -> int:
    """Index of the first answer of the most common normalised group; ties go to the earliest group."""
    items = list(texts)
    keys = [normalise(t) for t in items]
    counts = collections.Counter(keys)
    best = max(counts.values())
    return next(i for i, key in enumerate(keys) if counts[key] == best)


def most_relevant(question: str, texts: Sequence[str], lang: str = "en") -> int:
    """Index of the text BM25 finds most relevant to the question; ties (and no match) go to the first."""
    if len(texts) == 1:
        return 0
    import bm25s

    stopwords = "en" if lang == "en" else None
    corpus = bm25s.tokenize(list(texts), stopwords=stopwords, show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(corpus, show_progress=False)
    query_tokens = bm25s.tokenize([question], stopwords=stopwords, show_progress=False)
    # Words of the question that appear in no answer are unknown to the index: score them as nothing.
    vocab = query_tokens.vocab
    inverse = {index: word for word, index in vocab.items()}
    words = [inverse[i] for i in query_tokens.ids[0]]
    known = [w for w in words if w in corpus.vocab]
    if not known:
        return 0
    scores = retriever.get_scores(known)
    best = max(range(len(texts)), key=lambda i: (scores[i], -i))
    return best
