"""One solver's turn in a chain: under its timeout and deadline, whole or streamed, and what it tells the metrics.

`Turns` is the part of `chain.AnswerStream` that runs a single solver; the chain decides whose turn it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from persona_server import deadlines, metrics, secrets
from persona_server.query import Answer, Query, Source
from persona_server.slot import SolverSlot, wait_loaded
from persona_server.solvers.base import Piece, Solver, whole_answer_pieces
from persona_server.tooling import ToolCallPiece

log = logging.getLogger("persona_server.chain")


class AnswerFailed(Exception):
    """The answering solver failed after part of its answer was given out; the message is safe to show."""

    def __init__(self, message: str, *, solver: str) -> None:
        super().__init__(message)
        self.solver = solver


class DeadlineReached(Exception):
    """A solver used up its deadline (or what was left of the request's budget)."""


class Turns:
    """Running one solver's turn, for the chain (`chain.AnswerStream`, which sets these attributes)."""

    __slots__ = ()

    solver: str | None
    sources: list[Source]
    _persona: str
    _request_end: float | None
    _needs: frozenset[str]
    _cut: bool
    _turn_began: float
    _turn_ended: float | None
    _finished: dict[asyncio.Task[list[Piece]], float]

    async def _stream(self, slot: SolverSlot, query: Query) -> AsyncIterator[str | ToolCallPiece]:
        """One solver's turn, streamed: nothing is yielded unless it produces non-blank text in time.

        Each piece must come within the solver's timeout, and all of them before its deadline; a solver that
        reaches its deadline mid-answer ends the answer there (cut short), one that has said nothing is skipped.
        """
        assert slot.solver is not None
        timeout = slot.solver.timeout
        self._turn_began, self._turn_ended = time.perf_counter(), None
        try:
            await wait_loaded(slot)
        except Exception as exc:
            self._skip(slot, exc)
            return
        loop = asyncio.get_running_loop()
        end = self._end(slot.solver)
        stream = slot.solver.stream(query)
        held_sources: list[Source] = []
        lead = ""
        committed = False
        try:
            while True:
                left = end - loop.time()
                if left <= 0:
                    raise self._deadline_reached(slot.solver, end)
                try:
                    async with deadlines.timeout(min(timeout, left)):
                        piece = await anext(stream)
                except StopAsyncIteration:
                    if not committed:
                        self._observe(slot, "miss")
                    return
                except TimeoutError:
                    if left <= timeout:
                        raise self._deadline_reached(slot.solver, end) from None
                    raise
                if isinstance(piece, Source):
                    (self.sources if committed else held_sources).append(piece)
                    continue
                if type(piece) is ToolCallPiece:
                    if not committed:
                        committed = True  # a call of the client's tool is an answer, text or not
                        self._commit(slot, held_sources)
                    yield piece
                    continue
                if not committed:
                    # Leading blanks are not an answer: hold them until real text shows up.
                    lead += piece
                    if not lead.strip():
                        continue
                    committed = True
                    self._commit(slot, held_sources)
                    piece = lead.lstrip()
                yield piece
        except DeadlineReached as exc:
            if committed:
                self._cut = True
                log.warning("persona %r: solver %r cut short: %s", self._persona, slot.name, exc)
            else:
                self._skip(slot, exc)
        except Exception as exc:
            if not committed:
                self._skip(slot, exc)
                return
            # Part of the answer is out: the next solver cannot take over, the client must learn it is cut.
            reason = slot.last_error = describe(exc, timeout)
            log.warning("persona %r: solver %r failed mid-answer: %s", self._persona, slot.name, reason)
            # The reason stays in the log: exception texts may hold internals the client has no use for.
            raise AnswerFailed(f"The answer of solver '{slot.name}' broke off midway; the text sent so far is "
                               "incomplete.", solver=slot.name) from None
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    async def _collect(self, slot: SolverSlot, query: Query) -> list[Piece]:
        """A whole turn at once (speculative, or a solver that does not stream): its pieces, or [] for none."""
        solver = slot.solver
        assert solver is not None
        if slot.state != "ready":
            await wait_loaded(slot)
        if solver.instant and not self._needs:
            # Nothing to time: it answers before anything else runs (see Solver.instant).
            return answer_pieces(await solver.answer(query))
        end = self._end(solver)
        left = end - asyncio.get_running_loop().time()
        if left <= 0:
            raise self._deadline_reached(solver, end)
        # A held answer (see _run) streams for as long as its deadline allows; the solver's own timeout bounds
        # its silences (an LLM's upstream read timeout), not the whole answer.
        bound = solver.deadline if self._needs else solver.timeout
        try:
            async with deadlines.timeout(min(bound, left)):
                if solver.streams:
                    pieces: list[Piece] = [piece async for piece in solver.stream(query)]
                    return _leading_blanks_dropped(pieces)
                return answer_pieces(await solver.answer(query))
        except TimeoutError:
            if left <= bound:
                raise self._deadline_reached(solver, end) from None
            raise

    def _end(self, solver: Solver) -> float:
        """When this solver's turn must be over: its deadline from now, or the request's end if sooner."""
        end = asyncio.get_running_loop().time() + solver.deadline
        return end if self._request_end is None else min(end, self._request_end)

    def _deadline_reached(self, solver: Solver, end: float) -> DeadlineReached:
        if end == self._request_end:
            return DeadlineReached("the request's budget is spent")
        return DeadlineReached(f"its deadline of {solver.deadline:g} s is reached")

    def _commit(self, slot: SolverSlot, sources: list[Source]) -> None:
        self.solver = slot.name
        slot.last_error = None
        self.sources.extend(sources)
        self._observe(slot, "answer")

    def _skip(self, slot: SolverSlot, exc: BaseException) -> None:
        timeout = slot.solver.timeout if slot.solver else 0.0
        self._observe(slot, "timeout" if isinstance(exc, TimeoutError) else "error")
        slot.last_error = describe(exc, timeout)
        log.warning("persona %r: solver %r skipped: %s", self._persona, slot.name, slot.last_error)

    def _observe(self, slot: SolverSlot, outcome: str) -> None:
        ended = self._turn_ended or time.perf_counter()
        metrics.solver_turn(self._persona, slot.name, outcome, ended - self._turn_began)

    def _note_finished(self, task: asyncio.Task[list[Piece]]) -> None:
        self._finished[task] = time.perf_counter()


def answer_pieces(result: str | Answer | None) -> list[Piece]:
    """A whole answer as the chain takes it: [] for none or blanks, leading blanks dropped."""
    if isinstance(result, str):  # the common case, kept short
        text = result.lstrip()
        return [text] if text else []
    return _leading_blanks_dropped(whole_answer_pieces(result))


def _leading_blanks_dropped(pieces: list[Piece]) -> list[Piece]:
    """Same rule as the streamed path: blanks are no answer, and leading blanks are dropped."""
    first = next((i for i, p in enumerate(pieces)
                  if (isinstance(p, str) and p.strip()) or type(p) is ToolCallPiece), None)
    if first is None:
        return []
    lead = pieces[first]
    if isinstance(lead, str):
        lead = lead.lstrip()
    return [p for p in pieces[:first] if isinstance(p, Source)] + [lead, *pieces[first + 1:]]


def describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, DeadlineReached):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return secrets.redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
