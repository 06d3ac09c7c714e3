"""The request budget: every request ends within `--request-timeout` seconds, whatever its solvers do.

`RequestBudget` (ASGI middleware) notes when the current request must end; the chain reads it
(`request_end`) and gives each solver no more than what is left, so an answer still streaming then is cut and
ends properly (`finish_reason: "length"`). Should anything else still run a moment later (a request waiting for
a persona to load, say), the middleware cancels it: a 504 in the client's format if no response had started yet.
That backstop fires up to `SWEEP_INTERVAL` late.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # The chain imports this module: `ask` must not pay for importing the web stack.
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# After the budget, the chain's own cut needs a moment to send the last chunk before the middleware steps in.
BACKSTOP_GRACE = 1.0
SWEEP_INTERVAL = 0.5

_end: ContextVar[float | None] = ContextVar("persona_server_request_end", default=None)


def request_end() -> float | None:
    """The event-loop time by which the current request must be answered; None outside a request (`ask`)."""
    return _end.get()


class RequestBudget:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds
        # Requests in flight and when each must end. One sweep a second cancels the overdue: a timer per request
        # would cost more than the rest of a quick answer.
        self._ends: dict[asyncio.Task[Any], float] = {}
        self._cancelled: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        end = task.get_loop().time() + self.seconds
        token = _end.set(end)
        self._ends[task] = end
        if self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep())
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            if task not in self._cancelled:
                raise
            task.uncancel()
            log.warning("%s %s: cancelled after the request budget of %g s", scope.get("method"), scope["path"],
                        self.seconds)
            if not started:
                from persona_server.api import errors

                error = errors.APIError(504, f"No answer within the request budget of {self.seconds:g} s.",
                                        code="timeout")
                await errors.error_for_path(scope["path"], error, scope["method"])(scope, receive, send)
        finally:
            _end.reset(token)
            del self._ends[task]
            self._cancelled.discard(task)

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
