"""A look-up solver for tests: answers a fixed text (with sources) after an optional delay."""

from __future__ import annotations

import asyncio

from pydantic import Field

from persona_server.query import Answer, Query, Source
from persona_server.solvers.base import Solver, SolverOptions


class FixedOptions(SolverOptions):
    text: str = ""
    sources: list[str] = Field(default_factory=list)  # URLs
    delay: float = 0.0
    fail: bool = False


class FixedSolver(Solver):
    name = "fixed"
    description = "Looks things up in a fixed text."
    speculative = True
    Options = FixedOptions
    options: FixedOptions

    def __init__(self, options: SolverOptions, context: object) -> None:
        super().__init__(options, context)  # type: ignore[arg-type]
        self.questions: list[str] = []
        self.loads = 0

    async def load(self) -> None:
        self.loads += 1

    async def answer(self, query: Query) -> Answer | None:
        self.questions.append(query.question)
        if self.options.delay:
            await asyncio.sleep(self.options.delay)
        if self.options.fail:
            raise RuntimeError("look-up failed")
        if not self.options.text:
            return None
        return Answer(self.options.text, sources=[Source(url, url) for url in self.options.sources])
