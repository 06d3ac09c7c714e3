"""The OpenAI-compatible solver against a scripted upstream on loopback (in-process persona, real HTTP)."""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
import pytest

from persona_server.chain import AnswerFailed
from persona_server.query import Message, Query, Source
from persona_server.solvers.grounding import GROUNDING_INSTRUCTION

from .conftest import MakePersona
from .upstream import Reply, Upstream, free_port

OPENAI = "ovos-solver-openai-plugin"
FAILURE = "ovos-solver-failure-plugin"
KEY = "sk-test-9f8e7d6c5b4a"


def llm_persona(upstream: Upstream, **config: object) -> dict[str, object]:
    block = {"api_url": upstream.base_url, "key": KEY, "model": "scripted-model", "timeout": 5, **config}
    return {"name": "llm", "solvers": [OPENAI, FAILURE], OPENAI: block, FAILURE: {"answers": ["fallback"]}}


async def test_every_delta_passes_through_as_it_arrives(upstream: Upstream, make_persona: MakePersona) -> None:
    tokens = ["The", " capital", " of", " France", " is", " Paris", ".", " And a tail with no full stop"]
    upstream.script(Reply(tokens=tokens, delay=0.08))
    persona = await make_persona(llm_persona(upstream))
    stream = persona.stream(Query.from_text("What is the capital of France?"))
    pieces: list[tuple[float, str]] = [(time.monotonic(), piece) async for piece in stream]
    assert [p for _, p in pieces] == tokens  # nothing merged, held back or dropped
    assert stream.solver == OPENAI
    produced = upstream.requests[0].token_times
    # The first piece reached us while the upstream was still producing the rest.
    assert pieces[0][0] < produced[-1] - 0.3
    assert all(received >= made for (received, _), made in zip(pieces, produced, strict=True))


async def test_closing_the_stream_hangs_up_on_the_upstream(upstream: Upstream, make_persona: MakePersona) -> None:
    upstream.script(Reply(tokens=[f" word{i}" for i in range(50)], delay=0.05))
    persona = await make_persona(llm_persona(upstream))
    stream = persona.stream(Query.from_text("Talk for a while"))
    async for _ in stream:
        break
    await stream.aclose()
    for _ in range(100):
        if upstream.requests[0].disconnected:
            break
        await asyncio.sleep(0.02)
    assert upstream.requests[0].disconnected
    assert len(upstream.requests[0].token_times) < 50


async def test_system_prompt_history_and_request_options_reach_upstream(
    upstream: Upstream, make_persona: MakePersona
) -> None:
    persona = await make_persona(llm_persona(upstream, system_prompt="You are Ada, a terse librarian.",
                                             temperature=0.2, max_tokens=50, top_p=0.9))
    query = Query(
        messages=[
            Message("system", "Answer in French."),
            Message("user", "Hi, I am Bob."),
            Message("assistant", "Hello Bob."),
            Message("user", "What is my name?"),
        ],
        temperature=0.7, stop=["\n\n"], top_p=0.5,
    )
    answer = await persona.answer(query)
    assert answer.text == "I am the default upstream."
    request = upstream.requests[0]
    assert request.body["messages"] == [
        {"role": "system", "content": "You are Ada, a terse librarian.\n\nAnswer in French."},
        {"role": "user", "content": "Hi, I am Bob."},
        {"role": "assistant", "content": "Hello Bob."},
        {"role": "user", "content": "What is my name?"},
    ]
    body = request.body
    assert (body["model"], body["stream"], body["temperature"], body["max_tokens"], body["top_p"], body["stop"]) \
        == ("scripted-model", True, 0.7, 50, 0.5, ["\n\n"])
    assert request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("legacy", ["persona", "initial_prompt"])
async def test_legacy_prompt_keys(upstream: Upstream, make_persona: MakePersona, legacy: str) -> None:
    persona = await make_persona(llm_persona(upstream, **{legacy: "You are an old pirate."}))
    await persona.answer(Query.from_text("Hello"))
    assert upstream.requests[0].body["messages"][0] == {"role": "system", "content": "You are an old pirate."}
    assert "temperature" not in upstream.requests[0].body  # nothing configured, nothing sent


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (Reply(status=500), "HTTP 500"),
        (Reply(status=401, error=f"Incorrect API key provided: {KEY}"), "HTTP 401"),
        (Reply(hang=True), "0.5 s"),
        (Reply(tokens=["Partial"], hang_after=0), "0.5 s"),
        (Reply(tokens=[]), ""),
        (Reply(tokens=[" ", "\n"]), ""),
        (Reply(tokens=[], bad_json=True), "malformed"),
        (Reply(tokens=[], unfinished=True), "ended before it was finished"),
    ],
    ids=["500", "401-echoing-key", "hang", "silent-after-headers", "empty", "blank", "bad-json", "unfinished"],
)
async def test_upstream_failure_falls_through(
    upstream: Upstream, make_persona: MakePersona, caplog: pytest.LogCaptureFixture, reply: Reply, why: str
) -> None:
    caplog.set_level(logging.DEBUG)
    upstream.script(reply)
    persona = await make_persona(llm_persona(upstream, timeout=0.5))
    started = time.monotonic()
    answer = await persona.answer(Query.from_text("Tell me something"))
    assert (answer.text, answer.solver) == ("fallback", FAILURE)
    assert time.monotonic() - started < 3
    assert why in caplog.text
    assert KEY not in caplog.text


async def test_connection_refused_falls_through(make_persona: MakePersona,
                                                caplog: pytest.LogCaptureFixture) -> None:
    block = {"api_url": f"http://127.0.0.1:{free_port()}/v1", "key": KEY, "timeout": 2}
    persona = await make_persona({"solvers": [OPENAI, FAILURE], OPENAI: block, FAILURE: {"answers": ["fallback"]}})
    answer = await persona.answer(Query.from_text("Hello?"))
    assert (answer.text, answer.solver) == ("fallback", FAILURE)
    assert "cannot reach the upstream" in caplog.text
    assert KEY not in caplog.text


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (Reply(tokens=["It", " was", " a", " dark"], drop_after=2), "connection broke mid-answer"),
        (Reply(tokens=["It", " was"], unfinished=True), "ended before it was finished"),
        (Reply(tokens=["It", " was", " a"], hang_after=2), "failed mid-answer"),
    ],
    ids=["dropped", "no-done", "silent"],
)
async def test_an_answer_cut_short_is_a_failure_not_a_stop(
    upstream: Upstream, make_persona: MakePersona, caplog: pytest.LogCaptureFixture, reply: Reply, why: str
) -> None:
    upstream.script(reply, reply)
    persona = await make_persona(llm_persona(upstream, timeout=0.5))
    received: list[str] = []
    with pytest.raises(AnswerFailed):
        async for piece in persona.stream(Query.from_text("Tell me a story")):
            received.append(piece)
    assert received == ["It", " was"]  # what came, and no fallback after it
    assert why in caplog.text and "failed mid-answer" in caplog.text
    with pytest.raises(AnswerFailed):
        await persona.answer(Query.from_text("Tell me a story"))


@pytest.mark.parametrize("reply", [Reply(tokens=["One", " piece"], stream=False),
                                   Reply(tokens=["One", " piece"], blank_lines=False)],
                         ids=["json-instead-of-stream", "no-blank-lines"])
async def test_upstream_quirks(upstream: Upstream, make_persona: MakePersona, reply: Reply) -> None:
    upstream.script(reply)
    persona = await make_persona(llm_persona(upstream))
    answer = await persona.answer(Query.from_text("Hello"))
    assert (answer.text, answer.solver) == ("One piece", OPENAI)


# -- grounding --------------------------------------------------------------------------------------------

@pytest.mark.usefixtures("test_solvers")
async def test_context_solvers_ground_the_answer(upstream: Upstream, make_persona: MakePersona) -> None:
    data = llm_persona(upstream, system_prompt="You are Ada.",
                       context_solvers=["fixed-a", "fixed-b", "fixed-c",
                                        {"solver": "failure", "answers": ["Lisbon is in Portugal."]}])
    data |= {
        "fixed-a": {"text": "Paris is the capital of France.", "sources": ["https://example.org/paris"],
                    "delay": 0.4},
        "fixed-b": {"text": "France is a country in Europe.", "sources": ["https://example.org/france"],
                    "delay": 0.4},
        "fixed-c": {"fail": True},
    }
    persona = await make_persona(data)
    started = time.monotonic()
    answer = await persona.answer(Query.from_text("What is the capital of France?"))
    elapsed = time.monotonic() - started
    assert answer.text == "I am the default upstream."
    assert elapsed < 0.75  # the two 0.4 s look-ups ran side by side
    system = upstream.requests[0].body["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("You are Ada.\n\n" + GROUNDING_INSTRUCTION)
    for text in ("Paris is the capital of France.", "France is a country in Europe.", "Lisbon is in Portugal."):
        assert text in system["content"]
    assert upstream.requests[0].body["messages"][-1] == {"role": "user", "content": "What is the capital of France?"}
    assert answer.sources == [Source("https://example.org/paris", "https://example.org/paris"),
                              Source("https://example.org/france", "https://example.org/france")]
    helpers = persona.slots[0].solver._context_helpers  # type: ignore[union-attr]
    assert [h.solver.loads for h in helpers[:3]] == [1, 1, 1]  # type: ignore[attr-defined]
    await persona.answer(Query.from_text("And of Spain?"))
    assert [h.solver.loads for h in helpers[:3]] == [1, 1, 1]  # type: ignore[attr-defined]
    assert helpers[0].solver.questions == ["What is the capital of France?", "And of Spain?"]  # type: ignore[attr-defined]


@pytest.mark.usefixtures("test_solvers")
async def test_no_lookup_answer_means_no_grounding_block(upstream: Upstream, make_persona: MakePersona) -> None:
    persona = await make_persona(llm_persona(upstream, context_solvers=["fixed-a"]) | {"fixed-a": {"text": ""}})
    answer = await persona.answer(Query.from_text("Anything?"))
    assert answer.solver == OPENAI
    assert upstream.requests[0].body["messages"] == [{"role": "user", "content": "Anything?"}]


async def test_a_solver_cannot_ground_on_itself(upstream: Upstream, make_persona: MakePersona,
                                                caplog: pytest.LogCaptureFixture) -> None:
    persona = await make_persona(llm_persona(upstream, context_solvers=["openai"]))
    answer = await persona.answer(Query.from_text("Hello"))
    assert answer.solver == OPENAI
    assert "would use itself" in caplog.text


# -- tool calling -----------------------------------------------------------------------------------------

@pytest.mark.usefixtures("test_solvers")
async def test_tool_call_loop(upstream: Upstream, make_persona: MakePersona) -> None:
    upstream.script(
        Reply(tool_calls=[("search_fixed_a", '{"query": "capital of France"}'),
                          ("search_fixed_b", '{"query": "France"}')]),
        Reply(tokens=["Paris", " is", " the", " capital", "."]),
    )
    data = llm_persona(upstream, tool_solvers=["fixed-a", "fixed-b"]) | {
        "fixed-a": {"text": "Paris is the capital of France.", "sources": ["https://example.org/paris"]},
        "fixed-b": {"text": "France is in Europe."},
    }
    persona = await make_persona(data)
    answer = await persona.answer(Query.from_text("Which city is the capital of France?"))
    assert answer.text == "Paris is the capital."
    assert answer.sources == [Source("https://example.org/paris", "https://example.org/paris")]
    first, second = (r.body for r in upstream.requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["search_fixed_a", "search_fixed_b"]
    assert first["tools"][0]["function"]["parameters"]["required"] == ["query"]
    assert len(first["messages"]) == 1  # tools, not up-front grounding
    call_message, tool_a, tool_b = second["messages"][-3:]
    assert call_message["role"] == "assistant"
    assert [c["function"]["arguments"] for c in call_message["tool_calls"]] == [
        '{"query": "capital of France"}', '{"query": "France"}']
    assert tool_a == {"role": "tool", "tool_call_id": "call_0", "content": "Paris is the capital of France."}
    assert tool_b == {"role": "tool", "tool_call_id": "call_1", "content": "France is in Europe."}
    solvers = {t.helper.name: t.helper.solver for t in persona.slots[0].solver._tools.values()}  # type: ignore[union-attr]
    assert solvers["fixed-a"].questions == ["capital of France"]  # type: ignore[attr-defined]


@pytest.mark.usefixtures("test_solvers")
async def test_tool_rounds_are_bounded(upstream: Upstream, make_persona: MakePersona) -> None:
    loop = Reply(tool_calls=[("search_fixed_a", orjson.dumps({"query": "again"}).decode())])
    upstream.script(loop, loop, Reply(tokens=["Enough", "."]))
    data = llm_persona(upstream, context_solvers=["fixed-a"], tools=True, max_tool_rounds=2)
    persona = await make_persona(data | {"fixed-a": {"text": "Still nothing new."}})
    answer = await persona.answer(Query.from_text("Loop forever?"))
    assert answer.text == "Enough."
    assert ["tools" in r.body for r in upstream.requests] == [True, True, False]
    assert [m["role"] for m in upstream.requests[2].body["messages"]] == [
        "user", "assistant", "tool", "assistant", "tool"]


@pytest.mark.usefixtures("test_solvers")
async def test_upstream_without_tools_is_asked_again_without_them(upstream: Upstream,
                                                                  make_persona: MakePersona) -> None:
    upstream.script(Reply(status=400, error="this model does not support tools"), Reply(tokens=["Plain", "."]))
    persona = await make_persona(llm_persona(upstream, tool_solvers=["fixed-a"]) | {"fixed-a": {"text": "x"}})
    answer = await persona.answer(Query.from_text("Hi"))
    assert (answer.text, answer.solver) == ("Plain.", OPENAI)
    assert ["tools" in r.body for r in upstream.requests] == [True, False]
