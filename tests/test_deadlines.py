"""The coarse deadline timer behaves like asyncio.timeout."""

from __future__ import annotations

import asyncio

import pytest

from persona_server import deadlines


async def test_times_out() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with deadlines.timeout(0.05):
            await asyncio.sleep(5)
    assert 0.05 <= loop.time() - started < 1


async def test_fast_body_is_untouched_and_nothing_stays_pending() -> None:
    async with deadlines.timeout(0.05):
        await asyncio.sleep(0)
    await asyncio.sleep(0.1)  # the deadline passed: it must not cancel us now
    assert not deadlines._ticker().pending


async def test_outer_cancellation_is_not_turned_into_a_timeout() -> None:
    async def body() -> None:
        async with deadlines.timeout(10):
            await asyncio.sleep(5)

    task = asyncio.ensure_future(body())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_many_deadlines_share_one_timer() -> None:
    async def one(delay: float) -> str:
        try:
            async with deadlines.timeout(delay):
                await asyncio.sleep(0.2)
            return "done"
        except TimeoutError:
            return "timeout"

    results = await asyncio.gather(*(one(0.05 if i % 2 else 1.0) for i in range(100)))
    assert results.count("timeout") == 50
    assert results.count("done") == 50


async def test_deadline_callback_and_cancel() -> None:
    fired: list[int] = []
    deadlines.Deadline(0.02, lambda: fired.append(1))
    deadlines.Deadline(0.02, lambda: fired.append(2)).cancel()
    await asyncio.sleep(0.1)
    assert fired == [1]
