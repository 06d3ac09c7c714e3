"""The chain in-process: speculation keeps the in-order answer, losers are cancelled, LLMs never start early."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from persona_server.persona import Persona, parse_persona
from persona_server.query import Query
from persona_server.solvers import registry
from persona_server.solvers.base import Solver, SolverOptions


class ScriptOptions(SolverOptions):
    text: str = ""
    delay: float = 0.0
    fail: bool = False


class Probe:
    """What the scripted solvers did, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []


PROBE = Probe()


class ScriptedSolver(Solver):
    """Answers `text` after `delay` s and records start/finish/cancel."""

    name = "scripted-lookup"
    speculative = True
    Options = ScriptOptions
    options: ScriptOptions

    async def answer(self, query: Query) -> str:
        label = self.options.text or "miss"
        PROBE.events.append(f"start {label}")
        try:
            await asyncio.sleep(self.options.delay)
        except asyncio.CancelledError:
            PROBE.events.append(f"cancel {label}")
            raise
        PROBE.events.append(f"finish {label}")
        if self.options.fail:
            raise RuntimeError("scripted failure")
        return self.options.text


class ScriptedLLM(ScriptedSolver):
    name = "scripted-llm"
    speculative = False


@pytest.fixture(autouse=True)
def scripted() -> Iterator[None]:
    registry.register(ScriptedSolver)
    registry.register(ScriptedLLM)
    PROBE.events.clear()
    yield
    PROBE.events.clear()


async def persona(solvers: list[tuple[str, dict[str, Any]]], **settings: Any) -> Persona:
    """Solvers given as (registered name, config); each gets its own block through an inline alias name."""
    data: dict[str, Any] = {"name": "p", "solvers": [], **settings}
    for index, (name, config) in enumerate(solvers):
        alias = f"{name}#{index}"
        registry.register(registry.resolve(name), alias)
        data["solvers"].append(alias)
        data[alias] = config
    p = Persona(parse_persona(data, source="test", default_name="p"), http=lambda: httpx.AsyncClient())
    await p.start()
    await p.wait_ready()
    return p


async def test_speculation_keeps_the_in_order_answer() -> None:
    p = await persona([
        ("scripted-lookup", {"text": "", "delay": 0.2}),
        ("scripted-lookup", {"text": "second", "delay": 0.1}),
        ("scripted-lookup", {"text": "third", "delay": 0.01}),
    ])
    answer = await p.answer(Query.from_text("q"))
    assert answer.text == "second"
    assert answer.solver == "scripted-lookup#1"
    # All three started before the first one finished: they ran at the same time.
    assert PROBE.events[:3] == ["start miss", "start second", "start third"]
    # The third finished first, but the in-order chain's answer is the second's.
    assert PROBE.events.index("finish third") < PROBE.events.index("finish second")


async def test_losers_are_cancelled() -> None:
    p = await persona([
        ("scripted-lookup", {"text": "first", "delay": 0.05}),
        ("scripted-lookup", {"text": "slow", "delay": 5}),
    ])
    assert (await p.answer(Query.from_text("q"))).text == "first"
    await asyncio.sleep(0)  # let the cancellation land
    assert "cancel slow" in PROBE.events


async def test_speculation_off_runs_strictly_in_order() -> None:
    p = await persona([
        ("scripted-lookup", {"text": "", "delay": 0.05}),
        ("scripted-lookup", {"text": "second", "delay": 0.01}),
    ], speculative=False)
    assert (await p.answer(Query.from_text("q"))).text == "second"
    assert PROBE.events == ["start miss", "finish miss", "start second", "finish second"]


async def test_per_solver_setting_and_llms_never_start_early() -> None:
    p = await persona([
        ("scripted-lookup", {"text": "", "delay": 0.05}),
        ("scripted-llm", {"text": "llm", "delay": 0.01}),
        ("scripted-lookup", {"text": "never", "delay": 0.01, "speculative": False}),
    ])
    assert (await p.answer(Query.from_text("q"))).text == "llm"
    assert PROBE.events == ["start miss", "finish miss", "start llm", "finish llm"]


async def test_a_speculative_failure_falls_through() -> None:
    p = await persona([
        ("scripted-lookup", {"text": "boom", "delay": 0.01, "fail": True}),
        ("scripted-lookup", {"text": "fine", "delay": 0.02}),
    ])
    assert (await p.answer(Query.from_text("q"))).text == "fine"


async def test_closing_a_stream_cancels_everything_still_running() -> None:
    p = await persona([
        ("scripted-lookup", {"text": "a", "delay": 5}),
        ("scripted-lookup", {"text": "b", "delay": 5}),
    ])
    stream = p.stream(Query.from_text("q"))
    pending = asyncio.ensure_future(anext(aiter(stream)))
    await asyncio.sleep(0.05)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await stream.aclose()
    await asyncio.sleep(0)
    assert sorted(e for e in PROBE.events if e.startswith("cancel")) == ["cancel a", "cancel b"]
