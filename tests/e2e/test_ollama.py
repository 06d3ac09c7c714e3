"""The Ollama API against a real server process: the official `ollama` client, and raw NDJSON over httpx."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import ollama
import orjson
import pytest

from persona_server.solvers.failure import dialogs
from tests.conftest import ServerProcess, persona_args, start_server_process

ENGLISH = set(dialogs("en"))
FOX = "The quick brown fox jumps over the lazy dog. END here."
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("ollama")
    files = {
        "fallback.json": {"name": "Fallback", "solvers": ["ovos-solver-failure-plugin"]},
        "echo.json": {"name": "EchoBot", "solvers": ["test-echo"]},
        "history.json": {"name": "History", "solvers": ["test-history"]},
        "fixed.json": {"name": "Fixed", "solvers": ["test-fixed"], "test-fixed": {"text": FOX, "source": "Foxes"}},
        "slow.json": {"name": "Slow", "solvers": ["test-fixed"],
                      "test-fixed": {"text": "late", "delay": 30, "timeout": 60, "marker": str(root / "slow.marker")}},
        "trickle.json": {"name": "Trickle", "solvers": ["test-stream"],
                         "test-stream": {"pieces": ["a", "b", "c", "d", "e", "f"], "interval": 1, "timeout": 60,
                                         "marker": str(root / "trickle.marker")}},
    }
    args = persona_args(root, files)
    proc = start_server_process(*args, log_path=root / "server.log", env=plugin_env)
    proc.extra["root"] = root
    yield proc
    proc.stop()


@pytest.fixture
def client(server: ServerProcess) -> ollama.Client:
    return ollama.Client(host=server.base_url)


def assert_final(part: ollama.ChatResponse | ollama.GenerateResponse) -> None:
    assert part.done is True
    assert part.done_reason == "stop"
    for name in DURATIONS:
        assert isinstance(getattr(part, name), int), name
    assert part.total_duration and part.total_duration > 0
    assert part.total_duration >= (part.prompt_eval_duration or 0) + (part.eval_duration or 0)
    assert part.created_at and datetime.fromisoformat(part.created_at)


# -- the official client ----------------------------------------------------------------------------------------


def test_chat(client: ollama.Client) -> None:
    reply = client.chat(model="echobot", messages=[{"role": "user", "content": "hi there"}], stream=False)
    assert reply.model == "EchoBot:latest"
    assert reply.message.role == "assistant"
    assert reply.message.content == "echo: hi there (1 messages)"
    assert_final(reply)
    assert reply.prompt_eval_count == 2
    assert reply.eval_count == 8  # echo : hi there ( 1 messages )


def test_chat_streamed(client: ollama.Client) -> None:
    parts = list(client.chat(model="EchoBot:latest", messages=[{"role": "user", "content": "stream it"}],
                             stream=True))
    assert "".join(p.message.content or "" for p in parts) == "echo: stream it (1 messages)"
    assert len(parts) > 4, "word-sized chunks, then the final object"
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert parts[-1].message.content == ""
    assert_final(parts[-1])
    assert all(p.model == "EchoBot:latest" for p in parts)


def test_chat_history_reaches_chat_solvers(client: ollama.Client) -> None:
    reply = client.chat(model="history", stream=False, messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "1"},
        {"role": "user", "content": "two"},
    ])
    assert reply.message.content == "system=be brief | user=one | assistant=1 | user=two"


def test_generate(client: ollama.Client) -> None:
    reply = client.generate(model="history", prompt="why?", system="be kind", stream=False)
    assert reply.response == "system=be kind | user=why?"
    assert reply.model == "History:latest"
    assert_final(reply)
    parts = list(client.generate(model="echobot", prompt="word by word", stream=True))
    assert "".join(p.response or "" for p in parts) == "echo: word by word (1 messages)"
    assert parts[-1].done and not any(p.done for p in parts[:-1])


def test_options_num_predict_and_stop(client: ollama.Client) -> None:
    cut = client.generate(model="fixed", prompt="q", options={"num_predict": 3}, stream=False)
    assert (cut.response, cut.done_reason) == ("The quick brown", "length")
    assert cut.eval_count == 3
    stopped = client.chat(model="fixed", messages=[{"role": "user", "content": "q"}], stream=False,
                          options={"stop": ["lazy"], "temperature": 0.2, "top_p": 0.9})
    assert (stopped.message.content, stopped.done_reason) == ("The quick brown fox jumps over the ", "stop")
    unlimited = client.generate(model="fixed", prompt="q", options={"num_predict": -1}, stream=False)
    assert unlimited.response == FOX


def test_unknown_model_gets_the_default_persona(client: ollama.Client) -> None:
    reply = client.chat(model="llama3.2", messages=[{"role": "user", "content": "hello"}], stream=False)
    assert reply.model == "Fallback:latest"
    assert reply.message.content in ENGLISH


def test_load_request(client: ollama.Client, server: ServerProcess) -> None:
    reply = client.generate(model="echobot")
    assert (reply.done, reply.done_reason, reply.response) == (True, "load", "")
    chat = httpx.post(f"{server.base_url}/api/chat", json={"model": "echobot", "messages": []}).json()
    assert chat["done_reason"] == "load"
    assert chat["message"] == {"role": "assistant", "content": ""}


def test_list_show_ps_version(client: ollama.Client, server: ServerProcess) -> None:
    names = [m.model for m in client.list().models]
    # The personas, then the built-in embedding model.
    assert names == ["Fallback:latest", "EchoBot:latest", "History:latest", "Fixed:latest", "Slow:latest",
                     "Trickle:latest", "all-minilm:latest"]
    digests = {m.digest for m in client.list().models}
    assert len(digests) == len(names) and all(d and len(d) == 64 for d in digests)

    shown = client.show("fixed:latest")
    assert shown.details and shown.details.family == "persona"
    assert shown.modelinfo and shown.modelinfo["persona.solvers"] == ["test-fixed"]
    assert "completion" in (shown.capabilities or [])
    with pytest.raises(ollama.ResponseError) as info:
        client.show("nope")
    assert info.value.status_code == 404
    assert info.value.error == "model 'nope' not found"

    running = [m.model for m in client.ps().models]
    assert set(running) == set(names) - {"all-minilm:latest"}, "every persona is loaded"
    assert all(m.expires_at is not None for m in client.ps().models)

    version = httpx.get(f"{server.base_url}/api/version").json()
    assert version["version"].count(".") == 2


def test_a_persona_without_an_embedder_embeds_with_the_built_in_model(client: ollama.Client) -> None:
    reply = client.embed(model="echobot", input="text")
    assert reply.model == "all-minilm:latest" and len(reply.embeddings[0]) == 384  # the model that embedded


# -- raw NDJSON -------------------------------------------------------------------------------------------------


def test_streams_ndjson_by_default(server: ServerProcess) -> None:
    with httpx.stream("POST", f"{server.base_url}/api/chat",
                      json={"model": "fixed", "messages": [{"role": "user", "content": "q"}]}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [orjson.loads(line) for line in response.iter_lines() if line]
    assert "".join(line["message"]["content"] for line in lines) == FOX
    final = lines[-1]
    assert final["done"] is True and all(line["done"] is False for line in lines[:-1])
    assert final["solver"] == "test-fixed"
    assert final["sources"] == [{"title": "Foxes", "url": "https://example.org/x"}]
    for name in (*DURATIONS, "prompt_eval_count", "eval_count"):
        assert type(final[name]) is int, name
    assert final["created_at"].endswith("Z")

    for body in ({"model": "echobot", "prompt": "x"}, {"model": "echobot", "prompt": "x", "stream": None}):
        generated = httpx.post(f"{server.base_url}/api/generate", json=body)
        assert generated.headers["content-type"] == "application/x-ndjson"
        assert len(generated.text.splitlines()) > 1
    whole = httpx.post(f"{server.base_url}/api/generate", json={"model": "echobot", "prompt": "x", "stream": False})
    assert whole.headers["content-type"] == "application/json"
    assert whole.json()["response"] == "echo: x (1 messages)"


@pytest.mark.parametrize("model", ["EchoBot", "echobot:latest", "ECHOBOT:Latest", " echobot "])
def test_latest_tag_matching(server: ServerProcess, model: str) -> None:
    reply = httpx.post(f"{server.base_url}/api/chat", json={
        "model": model, "stream": False, "messages": [{"role": "user", "content": "x"}]})
    assert reply.json()["model"] == "EchoBot:latest"
    shown = httpx.post(f"{server.base_url}/api/show", json={"model": model})
    assert shown.status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/api/chat", b"{nope", 400, "not valid JSON"),
        ("/api/chat", b"[1]", 400, "JSON object"),
        ("/api/chat", b'{"model": "echobot"}', 400, "'messages' is a required property"),
        ("/api/chat", b'{"model": "echobot", "messages": "hi"}', 400, "messages"),
        ("/api/chat", b'{"model": "echobot", "messages": [{"role": "wizard", "content": "x"}]}', 400, "role"),
        ("/api/chat", b'{"model": "echobot", "stream": "yes", "messages": []}', 400, "stream"),
        ("/api/chat", b'{"messages": [{"role": "user", "content": "x"}]}', 400, "model is required"),
        ("/api/generate", b'{"model": "", "prompt": "x"}', 400, "model is required"),
        ("/api/generate", b'{"model": "echobot", "options": {"num_predict": "5"}}', 400, "num_predict"),
        ("/api/show", b'{}', 400, "model is required"),
        ("/api/show", b'{"model": "ghost"}', 404, "model 'ghost' not found"),
        ("/api/embeddings", b'{"model": "echobot", "prompt": 5}', 400, "prompt"),
        ("/api/embed", b'{"model": "echobot", "input": [1, 2]}', 400, "input"),
        ("/api/pull", b'{"model": "x"}', 404, "model 'x' not found"),
        ("/api/unknown", b'{}', 404, "404 page not found"),
    ],
)
def test_errors_are_ollama_errors(server: ServerProcess, path: str, body: bytes, status: int, message: str) -> None:
    response = httpx.post(server.base_url + path, content=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert isinstance(error, str)
    assert message in error


def test_strict_models(start_server: Callable[..., ServerProcess], write_persona: Callable[..., Path]) -> None:
    server = start_server("--persona", str(write_persona({"solvers": ["failure"]}, "Only.json")), "--strict-models")
    client = ollama.Client(host=server.base_url)
    assert client.chat(model="only", messages=[{"role": "user", "content": "x"}], stream=False).model == "Only:latest"
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="gpt-4o", messages=[{"role": "user", "content": "x"}], stream=False)
    assert info.value.status_code == 404
    assert info.value.error == "model 'gpt-4o' not found"


# -- a client that goes away cancels the work ---------------------------------------------------------------------


def wait_for(path: Path, timeout: float = 5) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        time.sleep(0.05)
    return ""


def test_disconnect_cancels_a_stream(server: ServerProcess) -> None:
    marker = server.extra["root"] / "trickle.marker"
    with httpx.stream("POST", f"{server.base_url}/api/generate", json={"model": "trickle", "prompt": "x"}) as response:
        first = next(response.iter_lines())
        assert orjson.loads(first)["response"] == "a"
    assert wait_for(marker) == "cancelled"


def test_disconnect_cancels_a_whole_answer(server: ServerProcess) -> None:
    marker = server.extra["root"] / "slow.marker"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.base_url}/api/chat", timeout=0.5,
                   json={"model": "slow", "stream": False, "messages": [{"role": "user", "content": "x"}]})
    assert wait_for(marker) == "cancelled"


def test_pull_an_existing_persona_succeeds(client: ollama.Client, server: ServerProcess) -> None:
    statuses = [part.status for part in client.pull("EchoBot:latest", stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert client.pull("echobot").status == "success"  # stream=False: one object
    # A client that pulls before chatting proceeds.
    assert client.chat(model="EchoBot", messages=[{"role": "user", "content": "hi"}]).message.content
    raw = httpx.post(server.base_url + "/api/pull", json={"model": "EchoBot"})
    assert raw.headers["content-type"].startswith("application/x-ndjson")
    assert [orjson.loads(line)["status"] for line in raw.text.splitlines()][-1] == "success"


def test_pull_an_unknown_model_is_404(client: ollama.Client) -> None:
    for stream in (False, True):
        with pytest.raises(ollama.ResponseError) as caught:
            result = client.pull("no-such-model", stream=stream)
            if stream:
                list(result)  # type: ignore[arg-type]
        assert caught.value.status_code == 404 and "no-such-model" in caught.value.error


def test_models_cannot_be_created_copied_deleted_or_pushed(client: ollama.Client, server: ServerProcess) -> None:
    calls = [
        lambda: client.create(model="new", from_="EchoBot", system="x"),
        lambda: client.copy("EchoBot", "EchoBot2"),
        lambda: client.delete("EchoBot"),
        lambda: client.push("EchoBot"),
    ]
    for call in calls:
        with pytest.raises(ollama.ResponseError) as caught:
            call()
        assert caught.value.status_code == 403
        assert caught.value.error.startswith("personas are files")
    assert "EchoBot:latest" in [m.model for m in client.list().models]  # still there
