"""Cleanup that finishes even when the task doing it is being cancelled.

A client that leaves a stream cancels the task that streams its answer, and Starlette does it through an anyio
cancel scope, which cancels that task again at every await until the task is done. A `finally:` that awaits the
close of an upstream request would itself be cancelled, leaving the connection checked out of the shared pool.
`shielded` runs the cleanup in a task of its own: it finishes whatever happens to the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# The event loop keeps only weak references to tasks: hold the cleanups running unattended until they are done.
_running: set[asyncio.Task[Any]] = set()


async def shielded(cleanup: Coroutine[Any, Any, Any]) -> None:
    """Run `cleanup` to its end. If the caller is cancelled meanwhile, the cancellation is raised at once and the
    cleanup goes on by itself; otherwise its outcome (an error too) is the caller's."""
    task = asyncio.ensure_future(cleanup)
    _running.add(task)
    task.add_done_callback(_finished)
    await asyncio.shield(task)


def _finished(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled():
        task.exception()  # read, so asyncio does not log "exception was never retrieved" for a cleanup


async def opened(opening: Coroutine[Any, Any, T], close: Callable[[T], Coroutine[Any, Any, Any]]) -> T:
    """Await `opening` (which opens something: sends a request and returns its response). If the caller is
    cancelled meanwhile, the opening goes on by itself and what it opens is closed as soon as it is there.

    httpx/httpcore, cancelled between connecting and sending a request, can leave the new connection checked out
    of the pool for good; never cancelling a send in flight avoids that. The send is bounded by its timeouts.
    """
    task = asyncio.ensure_future(opening)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        _running.add(task)
        task.add_done_callback(lambda done: _close_opened(done, close))
        raise


def _close_opened(task: asyncio.Task[T], close: Callable[[T], Coroutine[Any, Any, Any]]) -> None:
    _finished(task)
    if not task.cancelled() and task.exception() is None:
        closing = asyncio.ensure_future(close(task.result()))
        _running.add(closing)
        closing.add_done_callback(_finished)
