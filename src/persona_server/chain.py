"""Running a persona's solvers: in order, each under its timeout, until one answers.

The chain's result is an `AnswerStream`: the answering solver's text pieces as they come, plus which solver
answered and its sources. A solver that raises, times out or answers only whitespace is skipped; one that reaches
its deadline (or the end of the request's budget) mid-answer ends the answer there, cut short. Look-up solvers
may be started speculatively, all at once, when the chain starts: their results are used only when their turn
comes, so the answer is the one the in-order chain would give, just sooner. Closing the stream (a client that
disconnects) cancels everything still running.

Two endings are not answers: a solver that fails after part of its answer went out raises `AnswerFailed` (the
protocols end their streams with an error event), and a chain where no solver answers ends with an apology in
the asker's language, or raises `NoAnswer` when the persona says `"on_no_answer": "error"`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Sequence

from persona_server import budget
from persona_server.query import Query, Source
from persona_server.slot import SolverSlot
from persona_server.solvers.base import Piece, Solver
from persona_server.solvers.failure import apology
from persona_server.text import TextLimiter
from persona_server.tooling import ToolCall, ToolCallPiece, check_answer, merge_calls
from persona_server.turns import AnswerFailed, DeadlineReached, Turns

log = logging.getLogger(__name__)

__all__ = ["AnswerFailed", "AnswerStream", "DeadlineReached", "NoAnswer", "OnComplete", "run_chain"]


# Called with the answer streamed to its end; what it returns, if anything, is awaited before the stream ends.
OnComplete = Callable[[str], Awaitable[None] | None]


class NoAnswer(Exception):
    """No solver answered, and the persona wants an error for that (`"on_no_answer": "error"`)."""


# What a chain does when no solver answers: an apology from the failure solver's lines, or NoAnswer.
ON_NO_ANSWER = ("apology", "error")


class AnswerStream(Turns):
    """Async iterator of answer text; `solver` and `sources` are set once a solver commits to answering.

    The query's `max_tokens` and `stop` are applied here, once for every protocol; reaching a limit ends the
    stream and cancels the solver's remaining work. `finish_reason` and `tokens` are final when it ends.
    """

    # One per answer: slots make it quicker to make and to drop.
    __slots__ = ("_calls", "_chain_began", "_cut", "_early", "_finished", "_iter", "_limiter", "_needs",
                 "_on_complete", "_on_no_answer", "_persona", "_prepare", "_query", "_question", "_request_end",
                 "_slots", "_speculative", "_tooling", "_turn_began", "_turn_ended", "solver", "sources")

    def __init__(self, slots: Sequence[SolverSlot], query: Query, *, speculative: bool, persona: str,
                 on_complete: OnComplete | None = None, on_no_answer: str = "apology",
                 prepare: Callable[[Query], Awaitable[Query]] | None = None) -> None:
        self.solver: str | None = None
        self.sources: list[Source] = []
        self._slots = slots
        self._query = query
        self._speculative = speculative
        self._persona = persona
        self._limiter = TextLimiter(query.max_tokens, query.stop)
        self._on_complete = on_complete
        self._on_no_answer = on_no_answer
        # Work on the query that must be awaited before the first turn (an installed memory plugin's recall).
        self._prepare = prepare
        self._early: dict[int, asyncio.Task[list[Piece]]] = {}
        self._question: Query | None = None  # the query of question solvers (_query_for)
        self._iter: AsyncGenerator[str] | None = None
        # The current turn's clock, for its one metrics observation (`_observe`); a speculative turn runs from
        # the chain's start until its task finished (`_finished`).
        self._chain_began = self._turn_began = 0.0
        self._turn_ended: float | None = None
        self._finished: dict[asyncio.Task[list[Piece]], float] = {}
        # When the request must be answered (loop time), if it runs under a budget (see `budget`).
        self._request_end = budget.request_end()
        # A streaming solver reached its deadline mid-answer: what was sent is the answer, cut short.
        self._cut = False
        # Client tools and answer formats (persona_server.tooling): solvers that cannot give what the request
        # requires are skipped, and the answer of one that can is checked whole before any of it goes out.
        self._tooling = query.tooling
        self._needs = query.tooling.needs if query.tooling is not None else frozenset()
        self._calls: list[ToolCallPiece] = []

    @property
    def finish_reason(self) -> str:
        if self._calls:
            return "tool_calls"  # the answer is calls of the client's tools, for the client to run
        if self._cut:
            return "length"  # OpenAI's word for an answer that was cut short
        return self._limiter.finish_reason or "stop"

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The client-tool calls the answer made, whole (streamed fragments merged)."""
        return merge_calls(self._calls) if self._calls else []

    @property
    def tokens(self) -> int:
        return self._limiter.tokens

    @property
    def stop_sequence(self) -> str | None:
        """The stop sequence that ended the answer (None for a natural end or `length`)."""
        return self._limiter.stop_sequence

    def __aiter__(self) -> AsyncIterator[str | ToolCallPiece]:
        if self._iter is None:
            self._iter = self._limited()
        return self._iter

    async def aclose(self) -> None:
        if self._iter is not None:
            await self._iter.aclose()

    async def text(self) -> str:
        """The whole answer: what joining the stream gives, without a generator hop per piece."""
        pieces = await self._whole()
        if self._tooling is not None:
            self._calls.extend(p for p in pieces if type(p) is ToolCallPiece)
            pieces = [p for p in pieces if type(p) is str]
        text = self._limiter.whole(pieces)  # type: ignore[arg-type]
        if self._on_complete is not None:
            done = self._on_complete(text)
            if done is not None:  # a shared memory's write: awaited, so the next request sees it
                await done
        return text

    async def _limited(self) -> AsyncIterator[str | ToolCallPiece]:
        pieces = self._run()
        try:
            async for piece in pieces:
                if type(piece) is ToolCallPiece:
                    # Tool calls are not text: no token limit or stop sequence applies to them.
                    self._calls.append(piece)
                    yield piece
                    continue
                text = self._limiter.feed(piece)  # type: ignore[arg-type]
                if text:
                    yield text
                if self._limiter.done:
                    break
            else:
                text = self._limiter.finish()
                if text:
                    yield text
        finally:
            await pieces.aclose()
        # Only an answer streamed to its end (not one closed early by a client that left) is reported.
        if self._on_complete is not None:
            done = self._on_complete(self._limiter.text)
            if done is not None:
                await done

    # -- the chain ----------------------------------------------------------------------------------------

    def _turns(self) -> Iterator[tuple[SolverSlot, Solver, Query, asyncio.Task[list[Piece]] | None]]:
        """The solvers that can take a turn, in order, each with its query and its speculative start if any.

        Speculative solvers are all started on the first step; the caller cancels whatever it did not consume
        (`_cancel_early`).
        """
        early = self._early
        if self._speculative:
            self._chain_began = time.perf_counter()
            for index, slot in enumerate(self._slots):
                if (slot.solver is not None and slot.state in ("loading", "ready") and slot.solver.may_speculate
                        and self._needs <= slot.solver.supports):
                    early[index] = asyncio.create_task(self._collect(slot, self._query_for(slot.solver)),
                                                       name=f"early {slot.name}")
                    early[index].add_done_callback(self._note_finished)
        for index, slot in enumerate(self._slots):
            solver = slot.solver
            if solver is None or slot.state in ("error", "disabled"):
                continue
            if not self._needs <= solver.supports:
                continue  # it cannot give what the request requires (a tool call, a JSON answer)
            if self._request_end is not None and asyncio.get_running_loop().time() >= self._request_end:
                log.warning("persona %r: the request's budget is spent; %r and the rest not asked",
                            self._persona, slot.name)
                return
            yield slot, solver, self._query_for(solver), early.pop(index, None) if early else None

    def _query_for(self, solver: Solver) -> Query:
        """What `solver` is asked: the whole chat, or (a question solver) the last question, made once."""
        if solver.chat:
            return self._query
        if self._question is None:
            self._question = self._query.for_question_solver()
        return self._question

    def _cancel_early(self) -> None:
        for task in self._early.values():
            task.cancel()
        self._early.clear()

    async def _run(self) -> AsyncIterator[str | ToolCallPiece]:
        if self._prepare is not None:
            self._query = await self._prepare(self._query)
        try:
            for slot, solver, query, early in self._turns():
                # A checked answer is held whole: a JSON answer that fails to parse, once half sent, could not be
                # taken back for the next solver's.
                if early is not None or not solver.streams or self._needs:
                    pieces = await self._whole_turn(slot, query, early)
                    if pieces:
                        for piece in pieces:
                            yield piece
                        return
                    continue
                answered = False
                async for piece in self._stream(slot, query):
                    answered = True
                    yield piece
                if answered:
                    return
            yield self._no_answer()
        finally:
            if self._early:
                self._cancel_early()

    async def _whole(self) -> list[str | ToolCallPiece]:
        """The chain for a whole answer: the answering solver's text pieces (the apology when none answered)."""
        if self._prepare is not None:
            self._query = await self._prepare(self._query)
        try:
            for slot, solver, query, early in self._turns():
                if early is not None or not solver.streams or self._needs:
                    pieces = await self._whole_turn(slot, query, early)
                else:
                    pieces = [piece async for piece in self._stream(slot, query)]
                if pieces:
                    return pieces
            return [self._no_answer()]
        finally:
            if self._early:
                self._cancel_early()

    async def _whole_turn(self, slot: SolverSlot, query: Query,
                          early: asyncio.Task[list[Piece]] | None) -> list[str | ToolCallPiece]:
        """A turn taken whole (a speculative result, a solver that does not stream, an answer to check): its
        text and tool calls, or []."""
        self._turn_began = time.perf_counter() if early is None else self._chain_began
        try:
            pieces = await early if early is not None else await self._collect(slot, query)
        except Exception as exc:
            self._turn_ended = self._finished.get(early) if early is not None else None
            self._skip(slot, exc)
            return []
        self._turn_ended = self._finished.get(early) if early is not None else None
        if not pieces:
            self._observe(slot, "miss")
            return []
        texts = [p for p in pieces if not isinstance(p, Source)]
        if self._needs and self._tooling is not None:
            text = "".join(p for p in texts if type(p) is str)
            problem = check_answer(self._tooling, text, any(type(p) is ToolCallPiece for p in texts))
            if problem is not None:
                log.warning("persona %r: solver %r passed over: %s", self._persona, slot.name, problem)
                self._observe(slot, "miss")
                return []
        self._commit(slot, [p for p in pieces if isinstance(p, Source)] if len(texts) < len(pieces) else [])
        return texts

    def _no_answer(self) -> str:
        """The end of a chain where no solver answered: an apology in the asker's language, or NoAnswer."""
        log.warning("persona %r: no solver answered", self._persona)
        if self._needs:
            # An apology would be a text answer to a request that requires a tool call or JSON: never pretend.
            raise NoAnswer(f"No solver of persona '{self._persona}' gave the answer this request requires "
                           f"({' and '.join(sorted(self._needs))}).")
        if self._on_no_answer == "error":
            raise NoAnswer(f"No solver of persona '{self._persona}' could answer this question.")
        return apology(self._query.lang_code)

def run_chain(slots: Sequence[SolverSlot], query: Query, *, speculative: bool, persona: str,
              on_complete: OnComplete | None = None, on_no_answer: str = "apology",
              prepare: Callable[[Query], Awaitable[Query]] | None = None) -> AnswerStream:
    """Answer `query` with the chain; `on_complete(text)` is called when the answer has been streamed to its end;
    `prepare(query)`, when given, is awaited for the query the turns get."""
    return AnswerStream(slots, query, speculative=speculative, persona=persona, on_complete=on_complete,
                        on_no_answer=on_no_answer, prepare=prepare)
