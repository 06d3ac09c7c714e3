"""Solver metrics from the chain, in-process: one observation per turn, with its outcome and its own time."""

from __future__ import annotations

from prometheus_client import REGISTRY

from persona_server import metrics
from persona_server.query import Query
from tests.test_chain import persona, scripted  # noqa: F401 - `scripted` registers the scripted solvers

SECONDS = "persona_server_solver_duration_seconds"


def sample(suffix: str, solver: str, outcome: str) -> float:
    labels = {"persona": "p", "solver": solver, "outcome": outcome}
    metrics.flush()  # what /metrics does first: the tallies go to the registry
    return REGISTRY.get_sample_value(SECONDS + suffix, labels) or 0.0


async def test_a_speculative_turn_is_timed_until_its_own_result() -> None:
    before = {key: sample(*key) for key in (("_count", "scripted-lookup#0", "miss"),
                                            ("_count", "scripted-lookup#1", "answer"),
                                            ("_sum", "scripted-lookup#1", "answer"))}
    p = await persona([
        ("scripted-lookup", {"text": "", "delay": 0.4}),
        ("scripted-lookup", {"text": "second", "delay": 0.05}),
    ])
    answer = await p.answer(Query.from_text("q"))
    assert answer.text == "second"
    assert sample("_count", "scripted-lookup#0", "miss") - before[("_count", "scripted-lookup#0", "miss")] == 1
    assert sample("_count", "scripted-lookup#1", "answer") - before[("_count", "scripted-lookup#1", "answer")] == 1
    # The second solver ran alongside the first: its 0.05 s, not the 0.4 s the chain waited for its turn.
    took = sample("_sum", "scripted-lookup#1", "answer") - before[("_sum", "scripted-lookup#1", "answer")]
    assert 0.04 <= took < 0.3


async def test_errors_timeouts_and_unconsumed_speculation() -> None:
    before = {key: sample(*key) for key in (("_count", "scripted-lookup#0", "error"),
                                            ("_count", "scripted-lookup#1", "timeout"),
                                            ("_sum", "scripted-lookup#1", "timeout"),
                                            ("_count", "scripted-lookup#2", "answer"),
                                            ("_count", "scripted-lookup#3", "answer"))}
    p = await persona([
        ("scripted-lookup", {"text": "boom", "fail": True}),
        ("scripted-lookup", {"text": "late", "delay": 3, "timeout": 0.2}),
        ("scripted-lookup", {"text": "third"}),
        ("scripted-lookup", {"text": "never used"}),
    ])
    assert (await p.answer(Query.from_text("q"))).text == "third"

    def delta(*key: str) -> float:
        return sample(*key) - before[key]  # type: ignore[index]

    assert delta("_count", "scripted-lookup#0", "error") == 1
    assert delta("_count", "scripted-lookup#1", "timeout") == 1
    assert 0.15 <= delta("_sum", "scripted-lookup#1", "timeout") < 2
    assert delta("_count", "scripted-lookup#2", "answer") == 1
    # A speculative result the chain never reached is no turn.
    assert delta("_count", "scripted-lookup#3", "answer") == 0
