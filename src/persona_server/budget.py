"""The request budget: every request ends within `--request-timeout` seconds, whatever its solvers do.

`RequestBudget` (kept by the front door) notes when the current request must end; the chain reads it
(`request_end`) and gives each solver no more than what is left, so an answer still streaming then is cut and
ends properly (`finish_reason: "length"`). Should anything else still run a moment later (a request waiting for
a persona to load, say), the front door cancels it: a 504 in the client's format if no response had started yet.
That backstop fires up to `SWEEP_INTERVAL` late.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar, Token
from typing import Any

# After the budget, the chain's own cut needs a moment to send the last chunk before the front door steps in.
BACKSTOP_GRACE = 1.0
SWEEP_INTERVAL = 0.5

_end: ContextVar[float | None] = ContextVar("persona_server_request_end", default=None)


def request_end() -> float | None:
    """The event-loop time by which the current request must be answered; None outside a request (`ask`)."""
    return _end.get()


class RequestBudget:
    """The budget of the requests in flight (the front door, api/front_door.py, calls `begin` and `end`)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        # Requests in flight and when each must end. One sweep a second cancels the overdue: a timer per request
        # would cost more than the rest of a quick answer.
        self._ends: dict[asyncio.Task[Any], float] = {}
        self._cancelled: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def begin(self, task: asyncio.Task[Any]) -> Token[float | None]:
        """The request run by `task` starts now; the token is for `end`."""
        end = task.get_loop().time() + self.seconds
        self._ends[task] = end
        if self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep())
        return _end.set(end)

    def end(self, task: asyncio.Task[Any], token: Token[float | None]) -> None:
        _end.reset(token)
        del self._ends[task]
        self._cancelled.discard(task)

    def cancelled(self, task: asyncio.Task[Any]) -> bool:
        """Whether the CancelledError `task` got was the budget's (then it is uncancelled: the request may still
        send its 504)."""
        if task not in self._cancelled:
            return False
        task.uncancel()
        return True

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._ends:  # an idle server has no sweeper running
            await asyncio.sleep(SWEEP_INTERVAL)
            overdue = loop.time() - BACKSTOP_GRACE
            for task, end in list(self._ends.items()):
                if end <= overdue and task not in self._cancelled:
                    self._cancelled.add(task)
                    task.cancel()
        self._sweeper = None
