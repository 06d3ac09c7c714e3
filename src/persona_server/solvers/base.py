"""The solver interface: what every solver, built-in or third-party, implements.

A solver is a small class with an `Options` model (its persona-file block) and one coroutine, `answer`, that
returns text or None ("I don't know, ask the next solver"). Solvers that produce text incrementally (LLMs)
override `stream` instead. Blocking libraries subclass `BlockingSolver` and run in a bounded thread pool, so a
slow solver never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field

from persona_server.query import Answer, Query, Source

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

T = TypeVar("T")

Piece = str | Source
"""What a solver's stream yields: text, or the source of the text."""


def whole_answer_pieces(result: str | Answer | None) -> list[Piece]:
    """A whole answer as stream pieces: its sources, then its text."""
    if result is None:
        return []
    if isinstance(result, Answer):
        return [*result.sources, result.text]
    return [result]


class SolverOptions(BaseModel):
    """Keys every solver block accepts. Solvers subclass this with their own keys.

    Unknown keys are ignored: persona files written for OpenVoiceOS carry keys we have no use for.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    enabled: bool = True
    timeout: float | None = Field(default=None, gt=0, description="seconds before the chain moves on")
    # The timeout bounds the silence between pieces; an upstream that never stops needs a total budget too.
    deadline: float | None = Field(
        default=None, gt=0, description="seconds the solver may take in all; a stream is cut there"
    )
    speculative: bool | None = Field(
        default=None, description="may start before its turn in the chain (default: the solver's own)"
    )


class SolverContext:
    """What a persona lends its solvers: shared HTTP client, thread pool, and access to sibling solvers."""

    def __init__(
        self,
        *,
        persona: str,
        http: Callable[[], httpx.AsyncClient],
        build_solver: Callable[[str], Solver] | None = None,
        thread_limiter: anyio.CapacityLimiter | None = None,
        source: str | None = None,
    ) -> None:
        self.persona = persona
        # Where the persona came from (its file's path, or e.g. "<built-in>"): solvers resolve relative paths there.
        self.source = source
        self._http = http
        self._build_solver = build_solver
        self._limiter = thread_limiter

    @property
    def http(self) -> httpx.AsyncClient:
        """The one shared `httpx.AsyncClient` (connection pool) of the process."""
        return self._http()

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the persona's config are taken from: its file's, else the working one."""
        if self.source:
            path = Path(self.source)
            if path.is_file():
                return path.resolve().parent
        return Path.cwd()

    def solver(self, name: str) -> Solver:
        """Build another solver by name, configured from this persona's block for it (for composite solvers)."""
        if self._build_solver is None:
            raise RuntimeError("this context cannot build solvers")
        return self._build_solver(name)

    async def run_blocking(self, func: Callable[..., T], *args: Any) -> T:
        """Run blocking code in the bounded worker pool; the event loop keeps serving meanwhile."""
        return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter, abandon_on_cancel=True)


class Solver:
    """Base class of all solvers. Subclasses set `name` and implement `answer` (or `stream`)."""

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    # Chat-capable solvers see the whole history; the others only the last user message.
    chat: ClassVar[bool] = False
    # Look-up solvers are cheap and idempotent: the chain may start them before their turn.
    speculative: ClassVar[bool] = False
    # Answers every question (the failure solver): a chain without one may find no answer.
    always_answers: ClassVar[bool] = False
    default_timeout: ClassVar[float] = 10.0
    # Generous: a rule-based answer takes milliseconds; LLMs set their own (minutes), look-ups a short one.
    default_deadline: ClassVar[float] = 30.0
    Options: ClassVar[type[SolverOptions]] = SolverOptions

    def __init__(self, options: SolverOptions, context: SolverContext) -> None:
        self.options = options
        self.context = context

    @property
    def timeout(self) -> float:
        return self.options.timeout if self.options.timeout is not None else self.default_timeout

    @property
    def deadline(self) -> float:
        """Seconds the chain gives this solver's whole answer, however steadily it streams (by default never
        less than its timeout, which may be configured longer)."""
        if self.options.deadline is not None:
            return self.options.deadline
        return max(self.default_deadline, self.timeout)

    @property
    def may_speculate(self) -> bool:
        return self.options.speculative if self.options.speculative is not None else self.speculative

    async def load(self) -> None:
        """Load heavy data. Runs in the background after start-up; the chain waits for it on first use."""

    async def ensure_loaded(self) -> None:
        """Run `load` once, however many users (the chain, solvers that use this one) ask for it."""
        task: asyncio.Future[None] | None = getattr(self, "_load_task", None)
        if task is None:
            task = self._load_task = asyncio.ensure_future(self.load())
        await asyncio.shield(task)

    async def close(self) -> None:
        """Release resources at shutdown."""

    async def answer(self, query: Query) -> str | Answer | None:
        """The whole answer, or None to let the next solver try."""
        raise NotImplementedError(f"{type(self).__name__} implements neither answer() nor stream()")

    async def stream(self, query: Query) -> AsyncIterator[Piece]:
        """Answer piece by piece. By default the whole answer as one piece (streaming replies split it in words)."""
        for piece in whole_answer_pieces(await self.answer(query)):
            yield piece

    @property
    def streams(self) -> bool:
        """Whether this solver produces its answer incrementally (overrides `stream`)."""
        return type(self).stream is not Solver.stream


class BlockingSolver(Solver):
    """A solver built on a blocking library: `solve` and `load_sync` run in the worker thread pool."""

    def load_sync(self) -> None:
        """Load heavy data (in a worker thread)."""

    def solve(self, query: Query) -> str | Answer | None:
        raise NotImplementedError

    async def load(self) -> None:
        await self.context.run_blocking(self.load_sync)

    async def answer(self, query: Query) -> str | Answer | None:
        return await self.context.run_blocking(self.solve, query)
