"""The limiters' arithmetic: sizes, rates, the per-client allowance and bounded fan-out."""

from __future__ import annotations

import asyncio

import pytest

from persona_server.limits import Rate, RateLimiter, gather_bounded, parse_size


@pytest.mark.parametrize(("text", "size"), [("4194304", 4194304), ("4MiB", 4 * 1024**2), ("512 KiB", 512 * 1024),
                                            ("1MB", 1_000_000), ("2k", 2000), ("1gib", 1024**3), ("10b", 10)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "4 MiBs", "-1", "0", "1.5MiB", "MiB"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(("text", "rate"), [("60/minute", Rate(60, 60.0)), ("5/second", Rate(5, 1.0)),
                                            ("1000/hour", Rate(1000, 3600.0)), ("2/s", Rate(2, 1.0)),
                                            ("3 / minutes", Rate(3, 60.0)), ("7/h", Rate(7, 3600.0))])
def test_rates(text: str, rate: Rate) -> None:
    assert Rate.parse(text) == rate
    assert Rate.parse(str(rate)) == rate


@pytest.mark.parametrize("text", ["60", "0/minute", "x/minute", "5/day", "5/"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(ValueError):
        Rate.parse(text)


def test_an_allowance_is_a_burst_then_a_steady_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(Rate(3, 60.0), clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(20.0)
    assert limiter.acquire("b") == 0.0  # another client
    now[0] = 19.0
    assert limiter.acquire("a") == pytest.approx(1.0)
    now[0] = 20.0
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0


def test_the_table_of_clients_stays_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(Rate(10, 1.0), clock=lambda: now[0], max_keys=100)
    for n in range(1000):
        limiter.acquire(n)
        assert len(limiter) <= 100
    now[0] = 10.0  # every allowance is full again: a prune forgets them all
    for n in range(1000, 1101):
        limiter.acquire(n)
    assert len(limiter) <= 100


async def test_gather_bounded_runs_a_few_at_a_time_in_order() -> None:
    running = 0
    most = 0

    async def job(n: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return n

    assert await gather_bounded((lambda n=n: job(n)) for n in range(20)) == list(range(20))
    assert most == 4
