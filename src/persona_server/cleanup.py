"""Cleanup that finishes even when the task doing it is being cancelled.

A client that leaves a stream cancels the task that streams its answer, and Starlette does it through an anyio
cancel scope, which cancels that task again at every await until the task is done. A `finally:` that awaits the
close of an upstream request would itself be cancelled, leaving the connection checked out of the shared pool.
`shielded` runs the cleanup in a task of its own: it finishes whatever happens to the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

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
