"""The tools an LLM solver offers its model: persona-side functions it may call in its bounded tool loop.

Two kinds share one shape (`PersonaTool`): other solvers (`tool_solvers`, answered through `grounding.ask`) and
the tools of MCP servers (`toolboxes`, see `toolboxes.py`). A tool gives its OpenAI function spec and runs a call
to a text result (plus sources); whatever goes wrong in a call comes back as that text ("Error: ..."), for the
model to read, never as an exception out of the solver. Results are bounded in size: a tool that returns a
megabyte must not become a megabyte-long prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from persona_server.query import Query, Source
from persona_server.solvers import grounding

# Characters of one tool result handed to the model (about 4k tokens); the rest is cut, saying so.
MAX_RESULT_CHARS = 16_000
# OpenAI function names: letters, digits, `_` and `-`, at most 64.
MAX_NAME = 64
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_-]+")


class PersonaTool(Protocol):
    """One function the model may call, run on the server side."""

    name: str  # the function name the model sees (unique in the solver's table)

    @property
    def budget(self) -> float:
        """The longest one call may take (seconds), for the solver's own timeout."""
        ...

    def spec(self) -> dict[str, Any]:
        """The OpenAI `tools` entry."""
        ...

    async def call(self, arguments: str, query: Query) -> tuple[str, list[Source]]:
        """Run one call (`arguments` as the model wrote them, JSON text): its result text and sources."""
        ...


class SolverTool:
    """Another solver of the persona as a function (`search_wikipedia(query)`, `calculate(query)`, ...)."""

    def __init__(self, helper: grounding.Helper, name: str | None = None) -> None:
        self.helper = helper
        self.name = name or grounding.tool_name(helper.name)

    @property
    def budget(self) -> float:
        return self.helper.solver.timeout

    def spec(self) -> dict[str, Any]:
        return grounding.tool_spec(self.name, self.helper)

    async def call(self, arguments: str, query: Query) -> tuple[str, list[Source]]:
        question = grounding.tool_query(arguments, query, solver=self.helper.solver.name)
        result = await grounding.ask(self.helper, question)
        if result is None:
            return "No answer found.", []
        return bound_result(result.text), result.sources


def function_name(name: str) -> str:
    """A name as an OpenAI function name (MCP allows `.` and longer names)."""
    return (_UNSAFE_NAME.sub("_", name).strip("_") or "tool")[:MAX_NAME]


def bound_result(text: str) -> str:
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return text[:MAX_RESULT_CHARS] + f"\n[... cut: the result was {len(text)} characters long]"


def build(solver_tools: Iterable[SolverTool], toolbox_tools: Iterable[tuple[str, PersonaTool]] = ()
          ) -> dict[str, PersonaTool]:
    """Function name -> tool, every name unique. Solver tools keep their names (`search_x`, then `search_x_2`);
    a toolbox tool whose name is taken is prefixed with its toolbox's name (`orders_lookup`), then numbered."""
    table: dict[str, PersonaTool] = {}

    def add(tool: PersonaTool, candidates: list[str]) -> None:
        for candidate in candidates:
            if candidate not in table:
                break
        else:
            base, n = candidates[-1], 2
            while (candidate := f"{base[:MAX_NAME - 4]}_{n}") in table:
                n += 1
        tool.name = candidate
        table[candidate] = tool

    for tool in solver_tools:
        add(tool, [tool.name])
    for toolbox, tool in toolbox_tools:
        add(tool, [tool.name, function_name(f"{toolbox}_{tool.name}")])
    return table


def budget(tools: Iterable[PersonaTool]) -> float:
    """The longest one round of calls can take (they run at once)."""
    return max((tool.budget for tool in tools), default=0.0)
