"""`ovos-solver-failure-plugin`: the last resort that always says something, in the asker's language."""

from __future__ import annotations

import random
from functools import cache
from importlib.resources import files

from pydantic import Field

from persona_server.query import Query
from persona_server.solvers.base import Solver, SolverContext, SolverOptions

FALLBACK_LANG = "en"


@cache
def _shipped() -> frozenset[str]:
    return frozenset(p.name.removesuffix(".txt") for p in files("persona_server.data").joinpath("failure").iterdir()
                     if p.name.endswith(".txt"))


def dialogs(lang: str) -> tuple[str, ...]:
    """The shipped failure lines of a language (primary subtag), empty when there are none."""
    # `lang` comes from the request: only a shipped language may name a file (no `../`), and the cache stays small.
    return _dialogs(lang) if lang in _shipped() else ()


@cache
def _dialogs(lang: str) -> tuple[str, ...]:
    resource = files("persona_server.data").joinpath("failure", f"{lang}.txt")
    lines = resource.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip())


def apology(lang: str) -> str:
    """A shipped failure line in `lang` (English when there are none): what a chain says when nobody answered."""
    return random.choice(dialogs(lang) or dialogs(FALLBACK_LANG))


class FailureOptions(SolverOptions):
    answers: list[str] | None = Field(
        default=None, description="lines to choose from instead of the shipped dialogs (any language)"
    )


class FailureSolver(Solver):
    name = "ovos-solver-failure-plugin"
    instant = True  # answers without awaiting anything
    description = "Always answers, with an apology from per-language dialogs."
    default_timeout = 1.0
    always_answers = True
    Options = FailureOptions
    options: FailureOptions

    def __init__(self, options: SolverOptions, context: SolverContext) -> None:
        super().__init__(options, context)
        # The last solver of most chains, so it answers as cheaply as it can: its own lines, sorted out once.
        self._lines = tuple(a for a in self.options.answers or [] if a.strip())

    async def answer(self, query: Query) -> str:
        lines = self._lines
        if not lines:
            return apology(query.lang_code)
        return lines[0] if len(lines) == 1 else random.choice(lines)
