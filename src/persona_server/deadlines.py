"""Timeouts for many short operations on one coarse timer.

Every request sets a solver timeout and a disconnect watch that, almost always, are cancelled microseconds later
because the answer came first. An event-loop timer per such deadline costs more than the rest of a quick answer,
so deadlines are kept in a set instead and one periodic tick (every `RESOLUTION` seconds, only while any are
pending) fires those that are due. A deadline may fire up to `RESOLUTION` late: fine for timeouts measured in
seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType

RESOLUTION = 0.01


class _Ticker:
    """The deadlines of one event loop, and its one timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: set[Deadline] = set()
        self.handle: asyncio.TimerHandle | None = None

    def add(self, deadline: Deadline) -> None:
        self.pending.add(deadline)
        if self.handle is None:
            self.handle = self.loop.call_later(RESOLUTION, self.tick)

    def tick(self) -> None:
        now = self.loop.time()
        due = [d for d in self.pending if d.when <= now]
        for deadline in due:
            self.pending.discard(deadline)
            deadline.fire()
        self.handle = self.loop.call_later(RESOLUTION, self.tick) if self.pending else None


_tickers: dict[asyncio.AbstractEventLoop, _Ticker] = {}


def _ticker() -> _Ticker:
    loop = asyncio.get_running_loop()
    ticker = _tickers.get(loop)
    if ticker is None or ticker.loop.is_closed():
        # One per loop: tests and `ask` run several loops in one process over time.
        for old in [lp for lp in _tickers if lp.is_closed()]:
            del _tickers[old]
        ticker = _tickers[loop] = _Ticker(loop)
    return ticker


class Deadline:
    """Calls `callback` once at `loop.time() + delay`, unless cancelled first."""

    __slots__ = ("_ticker", "callback", "fired", "when")

    def __init__(self, delay: float, callback: Callable[[], object]) -> None:
        self._ticker = _ticker()
        self.when = self._ticker.loop.time() + delay
        self.callback = callback
        self.fired = False
        self._ticker.add(self)

    def fire(self) -> None:
        self.fired = True
        self.callback()

    def cancel(self) -> None:
        self._ticker.pending.discard(self)


class timeout:
    """`async with timeout(seconds):` raises TimeoutError if the body runs longer, like `asyncio.timeout`."""

    __slots__ = ("_cancelling", "_deadline", "_delay", "_task")

    def __init__(self, delay: float) -> None:
        self._delay = delay

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None, "timeout() must be used inside a task"
        self._task = task
        self._cancelling = task.cancelling()
        self._deadline = Deadline(self._delay, task.cancel)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._deadline.cancel()
        # As asyncio.timeout does: withdraw our cancel request; if nobody else's remains, it is a timeout.
        if self._deadline.fired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc
