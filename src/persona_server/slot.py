"""A position in a persona's chain: the solver built for it (if it could be), its loading state, and waiting for it.

The persona builds and loads slots; the chain runs them. Both import this module, which imports neither.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from persona_server import deadlines, secrets
from persona_server.solvers.base import Solver


class SolverSkipped(Exception):
    """A solver could not take its turn (still loading, failed to load)."""


SolverState = Literal["loading", "ready", "error", "disabled"]


@dataclass(slots=True)
class SolverSlot:
    """One position in a persona's chain: the solver (if it could be built) and its state."""

    name: str
    solver: Solver | None = None
    state: SolverState = "loading"
    error: str | None = None
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    # Why its last turn was skipped (raised, timed out, returned no text), for /status; cleared by an answer.
    last_error: str | None = None

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "state": self.state}
        if self.solver is not None and self.solver.name and self.solver.name != self.name:
            out["implementation"] = self.solver.name
        if self.error:
            out["error"] = secrets.redact(self.error)
        if self.last_error:
            out["last_error"] = secrets.redact(self.last_error)
        return out


# How long a request that arrives during start-up waits for a solver's data, at least: loading is not slowness.
LOAD_WAIT = 60.0


async def wait_loaded(slot: SolverSlot) -> None:
    """Wait for a solver still loading its data (a request right after start-up)."""
    assert slot.solver is not None
    if slot.state == "loading":
        try:
            async with deadlines.timeout(max(slot.solver.timeout, LOAD_WAIT)):
                await slot.loaded.wait()
        except TimeoutError:
            raise SolverSkipped("still loading") from None
    if slot.state != "ready":
        raise SolverSkipped(slot.error or slot.state)
