"""The mixture solver: workers gathered at once, each under its own timeout, and the three strategies."""

from __future__ import annotations

import time

import pytest

from persona_server.query import Query, Source

from .conftest import MakePersona
from .upstream import Reply, Upstream

MIXTURE = "persona-solver-mixture"
FAILURE = "ovos-solver-failure-plugin"

pytestmark = pytest.mark.usefixtures("test_solvers")


def mixture(blocks: dict[str, dict[str, object]], **config: object) -> dict[str, object]:
    return {"name": "mix", "solvers": ["mixture", FAILURE],
            "mixture": {"workers": list(blocks)} | config, FAILURE: {"answers": ["fallback"]}, **blocks}


async def test_bm25_picks_the_answer_about_the_question(make_persona: MakePersona) -> None:
    persona = await make_persona(mixture({
        "fixed-a": {"text": "I like turtles."},
        "fixed-b": {"text": "Paris is the capital of France.", "sources": ["https://example.org/paris"]},
        "fixed-c": {"text": "The weather is nice today.", "sources": ["https://example.org/weather"]},
    }))
    answer = await persona.answer(Query.from_text("What is the capital of France?"))
    assert (answer.text, answer.solver) == ("Paris is the capital of France.", "mixture")
    assert answer.sources == [Source("https://example.org/paris", "https://example.org/paris")]
    # A question no answer shares a word with: the first worker's answer.
    answer = await persona.answer(Query.from_text("Zebra quantum?"))
    assert answer.text == "I like turtles."


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["Lyon", "Paris.", "lyon!", "  PARIS ", "paris"], "Paris."),
        (["Lyon", "Paris", "paris.", "LYON"], "Lyon"),  # a tie: the group seen first
        (["One", "Two", "Three", "Four"], "One"),
    ],
)
async def test_majority(make_persona: MakePersona, texts: list[str], expected: str) -> None:
    # Inline worker configs: one solver, configured once per worker.
    data = mixture({}, strategy="majority", workers=[{"solver": "fixed-a", "text": text} for text in texts])
    persona = await make_persona(data)
    answer = await persona.answer(Query.from_text("Which city?"))
    assert (answer.text, answer.solver) == (expected, "mixture")


async def test_workers_run_at_once_each_under_its_own_timeout(make_persona: MakePersona) -> None:
    persona = await make_persona(mixture({
        "fixed-a": {"text": "Slow but in time.", "delay": 0.4},
        "fixed-b": {"text": "Too slow, never used.", "delay": 5, "timeout": 0.6},
        "fixed-c": {"fail": True},
        "fixed-d": {"text": "Also in time, about time.", "delay": 0.4},
    }))
    started = time.monotonic()
    answer = await persona.answer(Query.from_text("Is it in time?"))
    elapsed = time.monotonic() - started
    assert answer.text in ("Slow but in time.", "Also in time, about time.")
    assert 0.55 <= elapsed < 1.2  # waited for the 0.6 s timeout, not for 5 s, and not 0.4 + 0.4


async def test_nothing_gathered_means_no_answer(make_persona: MakePersona) -> None:
    persona = await make_persona(mixture({"fixed-a": {"text": ""}, "fixed-b": {"fail": True}}))
    answer = await persona.answer(Query.from_text("Anyone?"))
    assert (answer.text, answer.solver) == ("fallback", FAILURE)


async def test_llm_judge_writes_and_streams_the_answer(upstream: Upstream, make_persona: MakePersona) -> None:
    tokens = ["Paris", " is", " the", " capital", " of", " France", "."]
    upstream.script(Reply(tokens=tokens, delay=0.08), model="judge")
    judge = {"solver": "openai", "api_url": upstream.base_url, "model": "judge", "timeout": 5}
    persona = await make_persona(mixture({
        "fixed-a": {"text": "The capital of France is Paris.", "sources": ["https://example.org/a"]},
        "fixed-b": {"text": "France's capital: Lyon."},
    }, strategy="llm", judge=judge))
    stream = persona.stream(Query.from_text("What is the capital of France?"))
    pieces = [(time.monotonic(), piece) async for piece in stream]
    assert [p for _, p in pieces] == tokens
    assert stream.solver == "mixture"
    assert stream.sources == [Source("https://example.org/a", "https://example.org/a")]
    request = upstream.requests[0]
    assert pieces[0][0] < request.token_times[-1] - 0.3  # streamed, not gathered
    prompt = request.body["messages"][-1]["content"]
    assert "What is the capital of France?" in prompt
    assert "The capital of France is Paris." in prompt and "France's capital: Lyon." in prompt
    assert request.body["messages"][0]["role"] == "system"


async def test_failed_judge_gives_way_to_bm25(upstream: Upstream, make_persona: MakePersona) -> None:
    upstream.script(Reply(status=503), model="judge")
    judge = {"solver": "openai", "api_url": upstream.base_url, "model": "judge"}
    persona = await make_persona(mixture({
        "fixed-a": {"text": "I like turtles."},
        "fixed-b": {"text": "Paris is the capital of France."},
    }, strategy="llm", judge=judge))
    answer = await persona.answer(Query.from_text("What is the capital of France?"))
    assert (answer.text, answer.solver) == ("Paris is the capital of France.", "mixture")


async def test_two_llm_endpoints_in_one_mixture(upstream: Upstream, make_persona: MakePersona) -> None:
    """Inline worker configs: the same solver twice, configured twice."""
    upstream.script(Reply(tokens=["Paris", "."]), model="m1")
    upstream.script(Reply(tokens=["paris"]), model="m2")
    workers = [{"solver": "openai", "api_url": upstream.base_url, "model": m} for m in ("m1", "m2")]
    data = {"solvers": ["mixture"], "mixture": {"workers": [*workers, "fixed-a"], "strategy": "majority"},
            "fixed-a": {"text": "Lyon"}}
    persona = await make_persona(data)
    answer = await persona.answer(Query.from_text("Capital of France?"))
    assert answer.text == "Paris."
    assert sorted(r.body["model"] for r in upstream.requests) == ["m1", "m2"]


async def test_bad_configs_are_reported_and_skipped(make_persona: MakePersona) -> None:
    persona = await make_persona({"solvers": ["mixture", FAILURE], "mixture": {"workers": ["fixed-a"],
                                  "strategy": "llm"}, FAILURE: {"answers": ["fallback"]}})
    assert persona.slots[0].state == "error" and "judge" in (persona.slots[0].error or "")
    persona = await make_persona({"solvers": ["mixture", FAILURE], "mixture": {"workers": ["no-such-solver"]},
                                  FAILURE: {"answers": ["fallback"]}})
    assert persona.slots[0].state == "error" and "none of the workers" in (persona.slots[0].error or "")
    assert (await persona.answer(Query.from_text("Hi"))).text == "fallback"


async def test_a_cycle_through_another_solver_is_refused(upstream: Upstream, make_persona: MakePersona,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    data = {"solvers": ["mixture"], "mixture": {"workers": ["openai"]},
            "openai": {"api_url": upstream.base_url, "context_solvers": ["mixture"]}}
    persona = await make_persona(data)
    assert persona.slots[0].state == "ready"
    assert "'mixture' would use itself" in caplog.text
    answer = await persona.answer(Query.from_text("Hello"))
    assert answer.text == "I am the default upstream."
