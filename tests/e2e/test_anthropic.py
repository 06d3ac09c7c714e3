"""Anthropic's Messages API against a real server process, through the official `anthropic` SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import orjson
import pytest

from tests.conftest import ServerProcess, persona_args, start_server_process

FOX = "The quick brown fox jumps over the lazy dog."
KEY = "sk-ant-test-key"
EVENT_ORDER = ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop",
               "message_delta", "message_stop"]


def _personas(root: Path, files: dict[str, dict[str, object]]) -> list[str]:
    return persona_args(root, files)


PERSONAS = {
    "fixed.json": {"name": "Fixed", "solvers": ["test-fixed"], "test-fixed": {"text": FOX, "source": "Foxes"}},
    "history.json": {"name": "History", "solvers": ["test-history"], "memory": 5},
    "streamer.json": {"name": "Streamer", "solvers": ["test-stream"],
                      "test-stream": {"pieces": ["Once ", "upon ", "a ", "time."], "interval": 0.01}},
    # Breaks off after two pieces: the answer fails mid-way.
    "breaks.json": {"name": "Breaks", "solvers": ["test-stream"],
                    "test-stream": {"pieces": ["Once ", "upon ", "a ", "time."], "interval": 0.01, "fail_after": 2}},
    # Slower than the server's keep-alive interval (see `server`): its streams carry keep-alives.
    "slow.json": {"name": "Slow", "solvers": ["test-fixed"], "test-fixed": {"text": "At last.", "delay": 0.5}},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("anthropic")
    # A long story whose solver writes `marker` when it is cancelled.
    endless = {"name": "Endless", "solvers": ["test-stream"], "test-stream": {
        "pieces": [f"word{i} " for i in range(200)], "interval": 0.1, "marker": str(root / "cancelled")}}
    proc = start_server_process(*_personas(root, {**PERSONAS, "endless.json": endless}), log_path=root / "server.log",
                                env={**plugin_env, "PERSONA_SERVER_PING_INTERVAL": "0.1"})
    proc.extra["marker"] = root / "cancelled"
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("anthropic-key")
    proc = start_server_process(*_personas(root, PERSONAS), "--api-key", KEY, "--strict-models",
                                log_path=root / "server.log", env=plugin_env)
    yield proc
    proc.stop()


def client_for(server: ServerProcess, prefix: str = "", key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url + prefix, api_key=key, max_retries=0)


@pytest.fixture(params=["", "/anthropic"], ids=["vendor-path", "prefixed-path"])
def client(request: pytest.FixtureRequest, server: ServerProcess) -> anthropic.Anthropic:
    return client_for(server, request.param)


def test_create(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="fixed", max_tokens=100,
                                     messages=[{"role": "user", "content": "tell me about foxes"}])
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == "Fixed"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == FOX  # type: ignore[union-attr]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4, 10)
    assert message.model_extra is not None
    assert message.model_extra["solver"] == "test-fixed"
    assert message.model_extra["sources"] == [{"title": "Foxes", "url": "https://example.org/x"}]


def test_system_prompt_and_blocks_reach_the_persona(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="HISTORY", max_tokens=100, system=[{"type": "text", "text": "be brief"}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "first"}]},
                  {"role": "assistant", "content": "one"},
                  {"role": "user", "content": "second"}],
    )
    assert message.content[0].text == "system=be brief | user=first | assistant=one | user=second"  # type: ignore[union-attr]
    plain = client.messages.create(model="history", max_tokens=100, system="terse",
                                   messages=[{"role": "user", "content": "hi"}])
    assert plain.content[0].text == "system=terse | user=hi"  # type: ignore[union-attr]


def test_metadata_user_id_is_the_conversations_user(server: ServerProcess) -> None:
    client = client_for(server)  # one user's memory, so one path style
    ask = client.messages.create
    ask(model="history", max_tokens=50, metadata={"user_id": "ann"}, messages=[{"role": "user", "content": "first"}])
    second = ask(model="history", max_tokens=50, metadata={"user_id": "ann"},
                 messages=[{"role": "user", "content": "second"}])
    assert second.content[0].text == "user=first | assistant=user=first | user=second"  # type: ignore[union-attr]
    stranger = ask(model="history", max_tokens=50, messages=[{"role": "user", "content": "second"}])
    assert stranger.content[0].text == "user=second", "without a user_id nothing is remembered"  # type: ignore[union-attr]


def test_limits_map_to_stop_reasons(client: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": "foxes"}]
    cut = client.messages.create(model="fixed", max_tokens=3, messages=ask)  # type: ignore[arg-type]
    assert cut.content[0].text == "The quick brown"  # type: ignore[union-attr]
    assert (cut.stop_reason, cut.usage.output_tokens) == ("max_tokens", 3)
    stopped = client.messages.create(model="fixed", max_tokens=100, stop_sequences=["nothing", "lazy"],
                                     messages=ask,  # type: ignore[arg-type]
                                     extra_body={"temperature": 0.5, "top_p": 0.9})  # no longer SDK arguments
    assert stopped.content[0].text == "The quick brown fox jumps over the "  # type: ignore[union-attr]
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "lazy")


def test_unknown_model_gets_the_default_persona(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="no-such-model", max_tokens=10,
                                     messages=[{"role": "user", "content": "hi"}])
    assert message.model == "Fixed"


def test_stream_events_in_anthropic_order(server: ServerProcess) -> None:
    body = {"model": "streamer", "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": "a story"}]}
    with httpx.stream("POST", server.base_url + "/v1/messages", json=body, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    datas = [orjson.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n] == EVENT_ORDER
    assert [d["type"] for d in datas] == names, "each event's data names its own type"
    assert "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta") == "Once upon a time."
    delta = datas[names.index("message_delta")]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {"output_tokens": 5}
    assert delta["solver"] == "test-stream"


def test_messages_stream_helper(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="streamer", max_tokens=50, system="be nice",
                                messages=[{"role": "user", "content": "a story"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Once upon a time."
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.model == "Streamer"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 5)


def test_streamed_limits(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="streamer", max_tokens=2,
                                messages=[{"role": "user", "content": "a story"}]) as stream:
        assert "".join(stream.text_stream).rstrip() == "Once upon"
        assert stream.get_final_message().stop_reason == "max_tokens"
    with client.messages.stream(model="fixed", max_tokens=100, stop_sequences=["jumps"],
                                messages=[{"role": "user", "content": "foxes"}]) as stream:
        assert "".join(stream.text_stream) == "The quick brown fox "
        final = stream.get_final_message()
        assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "jumps")


def test_keep_alives_are_ping_events(client: anthropic.Anthropic, server: ServerProcess) -> None:
    with client.messages.stream(model="slow", max_tokens=50, messages=[{"role": "user", "content": "well?"}]) as s:
        assert "".join(s.text_stream) == "At last."
    body = {"model": "slow", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "well?"}]}
    names = [line for line in httpx.post(server.base_url + "/v1/messages", json=body).text.splitlines()
             if line.startswith("event: ")]
    assert names.count("event: ping") > 1, "pings while the answer was slow"
    assert names[-1] == "event: message_stop"


def test_leaving_a_stream_cancels_the_solver(server: ServerProcess) -> None:
    client = client_for(server)
    with client.messages.stream(model="endless", max_tokens=1000,
                                messages=[{"role": "user", "content": "go on"}]) as stream:
        assert next(iter(stream.text_stream)).startswith("word0")
    marker: Path = server.extra["marker"]
    deadline = time.monotonic() + 5
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "cancelled", "the solver stopped when the client left"


def test_an_answer_that_breaks_off(client: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": "a story"}]
    with pytest.raises(anthropic.APIStatusError, match="broke off midway") as info:  # the error comes mid-stream
        with client.messages.stream(model="breaks", max_tokens=50, messages=ask) as stream:  # type: ignore[arg-type]
            for _ in stream.text_stream:
                pass
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    with pytest.raises(anthropic.InternalServerError, match="broke off midway"):
        client.messages.create(model="breaks", max_tokens=50, messages=ask)  # type: ignore[arg-type]


def test_raw_stream_with_create(client: anthropic.Anthropic) -> None:
    events = list(client.messages.create(model="fixed", max_tokens=100, stream=True,
                                         messages=[{"role": "user", "content": "foxes"}]))
    assert events[0].type == "message_start"
    assert events[-1].type == "message_stop"
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == FOX  # type: ignore[union-attr]


def test_count_tokens(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model="fixed", system="be brief, please",
                                           messages=[{"role": "user", "content": "tell me about foxes"}])
    assert counted.input_tokens == 4 + 4


def test_models_list_in_anthropic_format(client: anthropic.Anthropic, server: ServerProcess) -> None:
    models = client.models.list()
    assert [m.id for m in models] == ["Fixed", "History", "Streamer", "Breaks", "Slow", "Endless"]
    first = models.data[0]
    assert first.type == "model" and first.display_name == "Fixed" and first.created_at.year >= 2024
    page = client.models.list(limit=2)
    assert [m.id for m in page.data] == ["Fixed", "History"] and page.has_more
    assert [m.id for m in page] == [m.id for m in models], "the SDK follows the pages"
    assert client.models.retrieve("streamer").id == "Streamer"
    with pytest.raises(anthropic.NotFoundError, match="does not exist"):
        client.models.retrieve("nope")
    # Without Anthropic's header, the same path is OpenAI's list.
    openai_list = httpx.get(server.base_url + "/v1/models").json()
    assert openai_list["object"] == "list" and openai_list["data"][0]["object"] == "model"


def test_bad_requests_raise_the_sdks_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens") as info:
        client.messages.create(model="fixed", max_tokens=0, messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["type"] == "error"  # type: ignore[index]
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError, match="stop_sequences"):
        client.messages.create(model="fixed", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
                               stop_sequences=["x" * 1001])
    # A persona without an LLM cannot call the client's tools: a required call is refused, naming the field.
    with pytest.raises(anthropic.BadRequestError, match="'tool_choice'"):
        client.messages.create(model="fixed", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
                               tools=[{"name": "x", "input_schema": {"type": "object"}}],
                               tool_choice={"type": "any"})
    with pytest.raises(anthropic.BadRequestError, match="type 'image' are not supported"):
        client.messages.create(model="fixed", max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}])


def test_missing_max_tokens_and_bad_json(server: ServerProcess) -> None:
    response = httpx.post(server.base_url + "/v1/messages",
                          json={"model": "fixed", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400
    assert response.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                          "message": "'max_tokens' is a required property"}}
    broken = httpx.post(server.base_url + "/anthropic/v1/messages", content=b"{nope")
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
    unknown = httpx.post(server.base_url + "/anthropic/v1/nothing-here", json={})
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
    wrong_method = httpx.get(server.base_url + "/v1/messages")
    assert wrong_method.status_code == 405 and wrong_method.json()["type"] == "error"


def test_api_key(keyed: ServerProcess) -> None:
    ask = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.AuthenticationError, match="Incorrect API key"):
        client_for(keyed, key="wrong").messages.create(model="fixed", max_tokens=10, messages=ask)  # type: ignore[arg-type]
    message = client_for(keyed, key=KEY).messages.create(model="fixed", max_tokens=10, messages=ask)  # type: ignore[arg-type]
    assert message.content[0].text  # type: ignore[union-attr]
    # Older SDKs and curl examples send the key as x-api-key.
    response = httpx.post(keyed.base_url + "/anthropic/v1/messages", headers={"x-api-key": KEY},
                          json={"model": "fixed", "max_tokens": 5, "messages": ask})
    assert response.status_code == 200
    with pytest.raises(anthropic.NotFoundError, match="'claude-x' does not exist") as info:
        client_for(keyed, "/anthropic", KEY).messages.create(model="claude-x", max_tokens=10, messages=ask)  # type: ignore[arg-type]
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
