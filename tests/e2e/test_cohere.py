"""Cohere's API (v2 chat, v1 chat and generate) against a real server process, through the official `cohere` SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cohere
import httpx
import pytest
from cohere.core.api_error import ApiError

from persona_server.api.cohere import V2ChatRequest
from persona_server.api.cohere_v1 import V1GenerateRequest
from persona_server.settings import Settings
from tests.conftest import ServerProcess, persona_args, start_server_process, wait_for_file

FOX = "The quick brown fox jumps over the lazy dog. END here."
BEFORE_END = "The quick brown fox jumps over the lazy dog. "
KEY = "cohere-test-key"


def _personas(root: Path) -> dict[str, dict[str, object]]:
    return {
        "fixed.json": {"name": "Fixed", "solvers": ["test-fixed"], "test-fixed": {"text": FOX, "source": "Foxes"}},
        "history.json": {"name": "History", "solvers": ["test-history"]},
        "slow.json": {"name": "Slow", "solvers": ["test-fixed"],
                      "test-fixed": {"text": "late", "delay": 30, "timeout": 60, "marker": str(root / "slow.marker")}},
        "trickle.json": {"name": "Trickle", "solvers": ["test-stream"],
                         "test-stream": {"pieces": ["a", "b", "c"], "interval": 1, "timeout": 60,
                                         "marker": str(root / "trickle.marker")}},
        "drip.json": {"name": "Drip", "solvers": ["test-stream"],
                      "test-stream": {"pieces": ["one", " two"], "interval": 0.5, "timeout": 60}},
        # Breaks after two pieces; the failure solver behind it must not take over a half-sent answer.
        "breaks.json": {"name": "Breaks", "solvers": ["test-stream", "ovos-solver-failure-plugin"],
                        "test-stream": {"pieces": ["One ", "two ", "three."], "interval": 0.05, "fail_after": 2}},
        "silent.json": {"name": "Silent", "solvers": ["test-fixed"], "test-fixed": {"text": ""},
                        "on_no_answer": "error"},
    }


def _start(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str], name: str,
           *extra: str) -> ServerProcess:
    root = tmp_path_factory.mktemp(name)
    args = persona_args(root, _personas(root))
    proc = start_server_process(*args, *extra, log_path=root / "server.log",
                                env={**plugin_env, "PERSONA_SERVER_PING_INTERVAL": "0.2"})
    proc.extra["root"] = root
    return proc


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    proc = _start(tmp_path_factory, plugin_env, "cohere")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    """A server with an API key and strict models."""
    proc = _start(tmp_path_factory, plugin_env, "cohere-locked", "--api-key", KEY, "--strict-models")
    yield proc
    proc.stop()


@pytest.fixture(scope="module", params=["", "/cohere"], ids=["vendor-paths", "prefixed-paths"])
def prefix(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def v2(server: ServerProcess, prefix: str) -> cohere.ClientV2:
    return cohere.ClientV2(api_key="anything", base_url=server.base_url + prefix)


@pytest.fixture
def v1(server: ServerProcess, prefix: str) -> cohere.Client:
    return cohere.Client(api_key="anything", base_url=server.base_url + prefix)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# -- v2 chat ------------------------------------------------------------------------------------------------------


def test_v2_chat(v2: cohere.ClientV2) -> None:
    reply = v2.chat(model="Fixed", messages=user("what is a fox?"))
    assert reply.message.role == "assistant"
    assert reply.message.content[0].type == "text"
    assert reply.message.content[0].text == FOX
    assert reply.finish_reason == "COMPLETE"
    assert reply.usage.tokens.input_tokens == 5  # what is a fox ?
    assert reply.usage.tokens.output_tokens == 13
    assert reply.usage.billed_units.output_tokens == 13
    assert reply.id
    extra = reply.model_extra or {}
    assert extra["solver"] == "test-fixed"
    assert extra["sources"] == [{"title": "Foxes", "url": "https://example.org/x"}]


def test_v2_chat_stream_events_in_order(v2: cohere.ClientV2) -> None:
    events = list(v2.chat_stream(model="Fixed", messages=user("hi")))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message-start", "content-start"]
    assert kinds[-2:] == ["content-end", "message-end"]
    deltas = [e for e in events if e.type == "content-delta"]
    assert len(deltas) == len(kinds) - 4 > 3, "word-sized deltas"
    assert "".join(e.delta.message.content.text for e in deltas) == FOX
    end = events[-1]
    assert end.delta.finish_reason == "COMPLETE"
    assert end.delta.usage.tokens.output_tokens == 13
    assert (end.model_extra or {})["solver"] == "test-fixed"
    assert events[0].id


def test_v2_system_prompt_and_history(v2: cohere.ClientV2) -> None:
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": "my name is Ann"}]},
        {"role": "assistant", "content": "Hello Ann."},
        {"role": "user", "content": "what is my name?"},
    ]
    reply = v2.chat(model="history", messages=messages)
    assert reply.message.content[0].text == (
        "system=Answer briefly. | user=my name is Ann | assistant=Hello Ann. | user=what is my name?")
    streamed = "".join(e.delta.message.content.text for e in v2.chat_stream(model="History", messages=messages)
                       if e.type == "content-delta")
    assert streamed == reply.message.content[0].text


def test_v2_stop_sequence(v2: cohere.ClientV2) -> None:
    reply = v2.chat(model="Fixed", messages=user("hi"), stop_sequences=["END"])
    assert reply.message.content[0].text == BEFORE_END
    assert reply.finish_reason == "STOP_SEQUENCE"
    events = list(v2.chat_stream(model="Fixed", messages=user("hi"), stop_sequences=["END"]))
    assert "".join(e.delta.message.content.text for e in events if e.type == "content-delta") == BEFORE_END
    assert events[-1].delta.finish_reason == "STOP_SEQUENCE"


def test_v2_token_limit(v2: cohere.ClientV2) -> None:
    reply = v2.chat(model="Fixed", messages=user("hi"), max_tokens=3)
    assert reply.message.content[0].text == "The quick brown"
    assert reply.finish_reason == "MAX_TOKENS"
    assert reply.usage.tokens.output_tokens == 3
    events = list(v2.chat_stream(model="Fixed", messages=user("hi"), max_tokens=3))
    assert "".join(e.delta.message.content.text for e in events if e.type == "content-delta") == "The quick brown"
    assert events[-1].delta.finish_reason == "MAX_TOKENS"


def test_v2_persona_chosen_by_model(v2: cohere.ClientV2) -> None:
    assert v2.chat(model="History", messages=user("x")).message.content[0].text == "user=x"
    assert v2.chat(model="Fixed", messages=user("x")).message.content[0].text == FOX
    # An unknown model gets the default persona (the first one).
    assert v2.chat(model="command-r-plus", messages=user("x")).message.content[0].text == FOX


def test_v2_bad_requests(v2: cohere.ClientV2) -> None:
    with pytest.raises(cohere.BadRequestError) as caught:
        v2.chat(model="Fixed", messages=[])
    assert caught.value.body == {"message": "Invalid value for 'messages': List should have at least 1 item after "
                                            "validation, not 0"}
    with pytest.raises(cohere.BadRequestError) as caught:
        v2.chat(model="Fixed", messages=user("hi"),
                tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])
    assert caught.value.body["message"] == "'tools' is not supported: personas do not call tools"
    with pytest.raises(cohere.BadRequestError) as caught:
        v2.chat(model="Fixed", messages=user("hi"), response_format={"type": "json_object"})
    assert "'response_format' is not supported" in caught.value.body["message"]
    with pytest.raises(cohere.BadRequestError) as caught:
        v2.chat(model="Fixed", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
    assert "images cannot be read" in caught.value.body["message"]
    with pytest.raises(cohere.BadRequestError) as caught:
        v2.chat(model="Fixed", messages=user("hi"), temperature=-1)
    assert "'temperature'" in caught.value.body["message"]


def test_v2_sampling_maps_onto_the_query() -> None:
    body = V2ChatRequest.model_validate({"model": "x", "messages": user("hi"), "temperature": 0.4, "p": 0.9,
                                       "max_tokens": 7, "stop_sequences": ["a", "b"]})
    query = body.query([], Settings())
    assert (query.temperature, query.top_p, query.max_tokens, query.stop) == (0.4, 0.9, 7, ["a", "b"])


# -- v1 chat and generate -----------------------------------------------------------------------------------------


def test_v1_chat(v1: cohere.Client) -> None:
    reply = v1.chat(model="Fixed", message="what is a fox?")
    assert reply.text == FOX
    assert reply.finish_reason == "COMPLETE"
    assert reply.meta.tokens.output_tokens == 13
    assert reply.meta.billed_units.input_tokens == 5
    assert [(m.role, m.message) for m in reply.chat_history] == [("USER", "what is a fox?"), ("CHATBOT", FOX)]
    assert reply.generation_id
    assert (reply.model_extra or {})["solver"] == "test-fixed"


def test_v1_chat_preamble_and_history(v1: cohere.Client) -> None:
    history = [{"role": "USER", "message": "my name is Ann"}, {"role": "CHATBOT", "message": "Hello Ann."}]
    reply = v1.chat(model="History", message="what is my name?", preamble="Answer briefly.", chat_history=history)
    assert reply.text == ("system=Answer briefly. | user=my name is Ann | assistant=Hello Ann. | "
                          "user=what is my name?")


def test_v1_chat_stream(v1: cohere.Client) -> None:
    events = list(v1.chat_stream(model="Fixed", message="hi"))
    kinds = [e.event_type for e in events]
    assert kinds[0] == "stream-start" and kinds[-1] == "stream-end"
    assert set(kinds[1:-1]) == {"text-generation"} and len(kinds) > 5
    assert "".join(e.text for e in events[1:-1]) == FOX
    end = events[-1]
    assert end.finish_reason == "COMPLETE"
    assert end.response.text == FOX
    assert end.response.generation_id == events[0].generation_id


def test_v1_chat_limits(v1: cohere.Client) -> None:
    reply = v1.chat(model="Fixed", message="hi", max_tokens=2)
    assert (reply.text, reply.finish_reason) == ("The quick", "MAX_TOKENS")
    events = list(v1.chat_stream(model="Fixed", message="hi", stop_sequences=["END"]))
    assert "".join(e.text for e in events if e.event_type == "text-generation") == BEFORE_END
    assert events[-1].finish_reason == "STOP_SEQUENCE"


def test_v1_generate(v1: cohere.Client) -> None:
    # Cohere keeps a stop sequence in the text and cuts an end sequence.
    reply = v1.generate(model="Fixed", prompt="hi", stop_sequences=["END"])
    assert [(g.text, g.finish_reason) for g in reply.generations] == [(BEFORE_END + "END", "STOP_SEQUENCE")]
    reply = v1.generate(model="Fixed", prompt="hi", end_sequences=["END"], num_generations=2)
    assert [(g.index, g.text, g.finish_reason) for g in reply.generations] == [
        (0, BEFORE_END, "STOP_SEQUENCE"), (1, BEFORE_END, "STOP_SEQUENCE")]
    reply = v1.generate(model="Fixed", prompt="hi", max_tokens=4)
    assert (reply.generations[0].text, reply.generations[0].finish_reason) == ("The quick brown fox", "MAX_TOKENS")
    assert reply.meta.tokens.output_tokens == 4


def test_v1_generate_stream(v1: cohere.Client) -> None:
    events = list(v1.generate_stream(model="Fixed", prompt="hi", stop_sequences=["END"]))
    assert events[-1].event_type == "stream-end"
    text = "".join(e.text for e in events if e.event_type == "text-generation")
    assert text == BEFORE_END + "END"
    assert events[-1].finish_reason == "STOP_SEQUENCE"
    assert events[-1].response.generations[0].text == text


def test_v1_bad_requests(v1: cohere.Client) -> None:
    with pytest.raises(cohere.BadRequestError) as caught:
        v1.generate(model="Fixed", prompt="hi", num_generations=9)
    assert "'num_generations'" in caught.value.body["message"]
    with pytest.raises(cohere.BadRequestError) as caught:
        v1.chat(message="hi", connectors=[{"id": "web-search"}])
    assert caught.value.body["message"] == "'connectors' is not supported: personas search with their own solvers"


def test_v1_generate_refuses_likelihoods() -> None:
    body = V1GenerateRequest.model_validate({"prompt": "x", "return_likelihoods": "ALL"})
    with pytest.raises(Exception, match="return_likelihoods"):
        body.check()


# -- keys, strict models, error shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["", "/cohere"])
def test_api_key(locked: ServerProcess, path: str) -> None:
    with pytest.raises(cohere.UnauthorizedError) as caught:
        cohere.ClientV2(api_key="wrong", base_url=locked.base_url + path).chat(model="Fixed", messages=user("hi"))
    assert caught.value.body == {"message": "Incorrect API key provided."}
    with pytest.raises(cohere.UnauthorizedError):
        cohere.Client(api_key="wrong", base_url=locked.base_url + path).generate(prompt="hi", model="Fixed")
    right = cohere.ClientV2(api_key=KEY, base_url=locked.base_url + path)
    assert right.chat(model="Fixed", messages=user("hi")).message.content[0].text == FOX


def test_strict_models(locked: ServerProcess) -> None:
    client = cohere.ClientV2(api_key=KEY, base_url=locked.base_url)
    with pytest.raises(cohere.NotFoundError) as caught:
        client.chat(model="command-r", messages=user("hi"))
    assert caught.value.body["message"].startswith("model 'command-r' not found")
    with pytest.raises(ApiError) as raised:
        list(cohere.Client(api_key=KEY, base_url=locked.base_url).chat_stream(model="command-r", message="hi"))
    assert raised.value.status_code == 404


def test_error_shapes_by_path(server: ServerProcess) -> None:
    for path in ("/cohere/v2/nothing", "/v2/nothing"):
        response = httpx.post(server.base_url + path, json={})
        assert response.status_code == 404
        assert set(response.json()) == {"message"}
    response = httpx.post(server.base_url + "/v2/chat", json={"model": None, "stream": None, "messages": user("x")})
    assert response.status_code == 200 and response.json()["message"]["content"][0]["text"] == FOX
    response = httpx.post(server.base_url + "/v1/chat", content=b"{not json")
    assert response.status_code == 400 and response.json()["message"].startswith("The request body is not valid JSON")
    # OpenAI's routes under the same /v1 prefix keep OpenAI's envelope.
    response = httpx.post(server.base_url + "/v1/chat/completions", json={"messages": []})
    assert response.status_code == 400 and set(response.json()["error"]) == {"message", "type", "param", "code"}


# -- slow answers: keep-alives, and a client that leaves cancels the work -------------------------------------


def test_keep_alives_while_a_slow_answer_streams(server: ServerProcess) -> None:
    v2 = cohere.ClientV2(api_key="x", base_url=server.base_url)
    assert "".join(e.delta.message.content.text for e in v2.chat_stream(model="Drip", messages=user("x"))
                   if e.type == "content-delta") == "one two"
    v1 = cohere.Client(api_key="x", base_url=server.base_url)
    assert "".join(e.text for e in v1.chat_stream(model="Drip", message="x") if e.event_type == "text-generation") \
        == "one two"
    with httpx.stream("POST", server.base_url + "/v2/chat", json={"model": "Drip", "messages": user("x"),
                                                                 "stream": True}) as response:
        assert ": ping" in response.read().decode()


def test_disconnect_cancels_a_stream(server: ServerProcess) -> None:
    body = {"model": "Trickle", "stream": True, "messages": user("x")}
    with httpx.stream("POST", server.base_url + "/v2/chat", json=body) as response:
        assert any('"text":"a"' in line for line in response.iter_lines())
    assert wait_for_file(server.extra["root"] / "trickle.marker") == "cancelled"


def test_disconnect_cancels_a_whole_answer(server: ServerProcess) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.base_url + "/v1/chat", json={"model": "Slow", "message": "x"}, timeout=0.5)
    assert wait_for_file(server.extra["root"] / "slow.marker") == "cancelled"


# -- answers that break off or never come -----------------------------------------------------------------------


def test_an_answer_that_breaks_off(server: ServerProcess) -> None:
    v2 = cohere.ClientV2(api_key="x", base_url=server.base_url)
    events = list(v2.chat_stream(model="Breaks", messages=user("x")))
    assert "".join(e.delta.message.content.text for e in events if e.type == "content-delta") == "One two "
    assert [e.type for e in events[-2:]] == ["content-end", "message-end"]
    assert events[-1].delta.finish_reason == "ERROR"
    assert events[-1].delta.error
    with pytest.raises(ApiError) as caught:
        v2.chat(model="Breaks", messages=user("x"))
    assert caught.value.status_code == 502 and caught.value.body["message"] == events[-1].delta.error
    v1 = cohere.Client(api_key="x", base_url=server.base_url)
    end = list(v1.chat_stream(model="Breaks", message="x"))[-1]
    assert (end.event_type, end.finish_reason, end.response.text) == ("stream-end", "ERROR", "One two ")
    last = list(v1.generate_stream(model="Breaks", prompt="x"))[-1]
    assert (last.event_type, last.finish_reason, last.err) == ("stream-error", "ERROR", events[-1].delta.error)


def test_no_answer_with_on_no_answer_error(server: ServerProcess) -> None:
    v2 = cohere.ClientV2(api_key="x", base_url=server.base_url)
    with pytest.raises(cohere.UnprocessableEntityError) as caught:
        v2.chat(model="Silent", messages=user("x"))
    assert caught.value.body["message"]
    events = list(v2.chat_stream(model="Silent", messages=user("x")))
    assert events[-1].delta.finish_reason == "ERROR" and events[-1].delta.error == caught.value.body["message"]


def test_openapi_describes_the_cohere_routes(server: ServerProcess) -> None:
    document = httpx.get(server.base_url + "/openapi.json").json()
    schemas = document["components"]["schemas"]
    for path in ("/v2/chat", "/cohere/v2/chat", "/v1/chat", "/v1/generate", "/cohere/v1/generate"):
        operation = document["paths"][path]["post"]
        assert operation["responses"]["4XX"]["$ref"].endswith("/CohereError"), path
        assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1] in schemas
    assert schemas["CohereErrorBody"]["required"] == ["message"]
    assert "messages" in schemas["V2ChatRequest"]["properties"]
    assert "chat_history" in schemas["V1ChatRequest"]["properties"]
