"""The current `openai` client against a real server process: both base URLs, stream and not, the helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from persona_server.solvers.failure import dialogs
from tests.conftest import ServerProcess, start_server_process

ENGLISH = set(dialogs("en"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    """Two personas: the built-in-like failure persona (default) and an echo persona from a plugin."""
    root = tmp_path_factory.mktemp("personas")
    (root / "fallback.json").write_text('{"name": "Fallback", "solvers": ["ovos-solver-failure-plugin"]}')
    (root / "echo.json").write_text('{"name": "EchoBot", "solvers": ["test-echo", "ovos-solver-failure-plugin"]}')
    (root / "fixed.json").write_text(
        '{"name": "Fixed", "solvers": ["test-fixed"],'
        ' "test-fixed": {"text": "The quick brown fox jumps over the lazy dog. END here.", "source": "Foxes"}}'
    )
    proc = start_server_process(
        "--persona", str(root / "fallback.json"), "--persona", str(root / "echo.json"),
        "--persona", str(root / "fixed.json"),
        log_path=root / "server.log", env=plugin_env,
    )
    yield proc
    proc.stop()


@pytest.fixture(params=["/v1", "/v1/"], ids=["v1", "v1-trailing-slash"])
def client(server: ServerProcess, request: pytest.FixtureRequest) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + request.param, api_key="anything", max_retries=0)


def test_chat_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="", messages=[{"role": "user", "content": "tell me a joke"}])
    assert completion.object == "chat.completion"
    assert completion.model == "Fallback"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content in ENGLISH
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    # Our extension: which solver answered.
    assert completion.model_extra is not None
    assert completion.model_extra["solver"] == "ovos-solver-failure-plugin"


def test_model_picks_the_persona_case_insensitively(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="echobot", messages=[{"role": "user", "content": "hi"}])
    assert completion.model == "EchoBot"
    assert completion.choices[0].message.content == "echo: hi (1 messages)"
    assert completion.model_extra and completion.model_extra["solver"] == "test-echo"


def test_unknown_model_gets_the_default_persona(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert completion.model == "Fallback"


def test_question_solvers_see_only_the_last_user_message(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="EchoBot",
        messages=[
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "echo: first"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
        ],
    )
    assert completion.choices[0].message.content == "echo: second (1 messages)"


def test_streaming(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="EchoBot", messages=[{"role": "user", "content": "stream this please"}], stream=True,
    ))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "echo: stream this please (1 messages)"
    assert len([c for c in chunks if c.choices[0].delta.content]) > 3, "word-sized pieces"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert all(c.usage is None for c in chunks)


def test_streaming_usage_chunk_only_when_asked(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="EchoBot", messages=[{"role": "user", "content": "count me"}], stream=True,
        stream_options={"include_usage": True},
    ))
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8  # echo : count me ( 1 messages )
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_helper(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model="EchoBot", messages=[{"role": "user", "content": "helper"}]) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == "echo: helper (1 messages)"
    assert final.choices[0].message.content == "echo: helper (1 messages)"


def test_n_choices(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="", messages=[{"role": "user", "content": "?"}], n=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert all(c.message.content in ENGLISH for c in completion.choices)

    chunks = list(client.chat.completions.create(
        model="EchoBot", messages=[{"role": "user", "content": "x"}], n=2, stream=True,
    ))
    for index in (0, 1):
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices[0].index == index)
        assert text == "echo: x (1 messages)"
    assert len([c for c in chunks if c.choices[0].finish_reason]) == 2


@pytest.mark.parametrize("stream", [False, True])
def test_stop_and_max_tokens(client: openai.OpenAI, stream: bool) -> None:
    def ask(**kwargs: object) -> tuple[str, str | None]:
        result = client.chat.completions.create(
            model="Fixed", messages=[{"role": "user", "content": "q"}], stream=stream, **kwargs  # type: ignore[call-overload]
        )
        if not stream:
            return result.choices[0].message.content or "", result.choices[0].finish_reason
        chunks = list(result)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), finish[0]

    assert ask(stop=["END"]) == ("The quick brown fox jumps over the lazy dog. ", "stop")
    assert ask(stop="lazy") == ("The quick brown fox jumps over the ", "stop")
    assert ask(max_tokens=3) == ("The quick brown", "length")
    assert ask(max_completion_tokens=4) == ("The quick brown fox", "length")


def test_sources_in_metadata(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="Fixed", messages=[{"role": "user", "content": "q"}])
    assert completion.model_extra and completion.model_extra["sources"] == [
        {"title": "Foxes", "url": "https://example.org/x"}
    ]


def test_legacy_completions(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="EchoBot", prompt="complete me")
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "echo: complete me (1 messages)"
    multi = client.completions.create(model="EchoBot", prompt=["a", "b"], n=2)
    assert [c.text for c in multi.choices] == ["echo: a (1 messages)"] * 2 + ["echo: b (1 messages)"] * 2
    streamed = list(client.completions.create(model="EchoBot", prompt="flow", stream=True))
    assert "".join(c.choices[0].text for c in streamed) == "echo: flow (1 messages)"
    assert [c.choices[0].finish_reason for c in streamed if c.choices[0].finish_reason] == ["stop"]
    echoed = client.completions.create(model="Fixed", prompt="Q: ", echo=True, max_tokens=2)
    assert echoed.choices[0].text == "Q: The quick"


def test_models(client: openai.OpenAI) -> None:
    # The personas, then the built-in embedding model.
    assert [m.id for m in client.models.list()] == ["Fallback", "EchoBot", "Fixed", "all-minilm"]
    assert client.models.retrieve("echobot").id == "EchoBot"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("nope")
    assert info.value.code == "model_not_found"


def test_client_errors_are_openai_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="", messages=[])
    assert info.value.param == "messages"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="", messages=[{"role": "wizard", "content": "x"}])  # type: ignore[list-item]


def test_root_paths_without_v1(server: ServerProcess) -> None:
    response = httpx.post(f"{server.base_url}/chat/completions",
                          json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] in ENGLISH
    assert httpx.get(f"{server.base_url}/models").json()["object"] == "list"
    assert httpx.post(f"{server.base_url}/completions", json={"prompt": "x", "model": "EchoBot"}).status_code == 200


def test_strict_models(start_server: Callable[..., ServerProcess], write_persona: Callable[..., Path]) -> None:
    server = start_server("--persona", str(write_persona({"solvers": ["failure"]}, "Only.json")), "--strict-models")
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    assert client.chat.completions.create(model="only", messages=[{"role": "user", "content": "x"}]).model == "Only"
    assert client.chat.completions.create(model="", messages=[{"role": "user", "content": "x"}]).model == "Only"
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"
    assert info.value.param == "model"
