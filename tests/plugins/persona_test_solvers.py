"""Solvers for tests, installed into server processes through the `persona_server.solvers` entry-point group.

They make chain behaviour observable: echo the question, report the history, answer slowly, raise, stream pieces
with delays, and record cancellation in a marker file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from persona_server.query import Answer, Query, Source
from persona_server.solvers.base import BlockingSolver, Piece, Solver, SolverOptions


class EchoSolver(Solver):
    name = "test-echo"

    async def answer(self, query: Query) -> str:
        return f"echo: {query.question} ({len(query.messages)} messages)"


class HistorySolver(Solver):
    name = "test-history"
    chat = True

    async def answer(self, query: Query) -> str:
        return " | ".join(f"{m.role}={m.content}" for m in query.messages)


class FixedOptions(SolverOptions):
    text: str = ""
    delay: float = 0.0
    marker: str | None = None
    fail: bool = False
    source: str | None = None
    load_delay: float = 0.0


class FixedSolver(Solver):
    """Answers `text` after `delay` seconds; writes 'cancelled' to `marker` when cancelled; `fail` raises;
    takes `load_delay` seconds to load."""

    name = "test-fixed"
    Options = FixedOptions
    options: FixedOptions

    async def load(self) -> None:
        await asyncio.sleep(self.options.load_delay)

    async def answer(self, query: Query) -> str | Answer:
        try:
            await asyncio.sleep(self.options.delay)
        except asyncio.CancelledError:
            if self.options.marker:
                Path(self.options.marker).write_text("cancelled")  # noqa: ASYNC240 - a tiny test marker
            raise
        if self.options.fail:
            raise RuntimeError("this solver fails on purpose")
        if self.options.source:
            return Answer(self.options.text, sources=[Source(self.options.source, "https://example.org/x")])
        return self.options.text


class StreamOptions(SolverOptions):
    pieces: list[str] = []
    interval: float = 0.1
    marker: str | None = None
    fail_after: int | None = None


class StreamSolver(Solver):
    """Yields `pieces` with `interval` seconds between them; writes 'cancelled' to `marker` when cancelled;
    raises after `fail_after` pieces when set."""

    name = "test-stream"
    Options = StreamOptions
    options: StreamOptions

    async def stream(self, query: Query) -> AsyncIterator[Piece]:
        try:
            for index, piece in enumerate(self.options.pieces):
                if index == self.options.fail_after:
                    raise RuntimeError("this stream fails on purpose")
                yield piece
                await asyncio.sleep(self.options.interval)
        except (asyncio.CancelledError, GeneratorExit):
            if self.options.marker:
                Path(self.options.marker).write_text("cancelled")  # noqa: ASYNC240 - a tiny test marker
            raise


class SleepOptions(SolverOptions):
    seconds: float = 1.0
    marker: str | None = None


class BlockingSleepSolver(BlockingSolver):
    """Blocks its thread for `seconds` (like a slow blocking library), writing `marker` when it starts."""

    name = "test-blocking"
    Options = SleepOptions
    options: SleepOptions

    def solve(self, query: Query) -> str:
        if self.options.marker:
            Path(self.options.marker).write_text("started")
        time.sleep(self.options.seconds)
        return "woke up"
