"""Client mistakes get OpenAI's error envelope with the right status, never a 500 or FastAPI's {"detail"}."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from persona_server.solvers.failure import dialogs
from tests.conftest import ServerProcess, start_server_process

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server_process(log_path=tmp_path_factory.mktemp("errors") / "server.log")
    yield proc
    proc.stop()


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    assert isinstance(body["error"]["type"], str)
    if param is not None:
        assert body["error"]["param"] == param
    return body["error"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[1, 2]", None),
        (b'"just a string"', None),
        (b'{"messages": []}', "messages"),
        (b'{"model": "x"}', "messages"),
        (b'{"messages": "hello"}', "messages"),
        (b'{"messages": [{"role": "user"}], "stream": "yes"}', "stream"),
        (b'{"messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
        (b'{"messages": [{"content": "hi"}]}', "messages[0].role"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "n": 0}', "n"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}', "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}', "temperature"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "model": 42}', "model"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "stop": ["a","b","c","d","e"]}', "stop[4]"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "stop": ["a", 5]}', "stop[1]"),
        (b'{"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}', "messages[0].content[0].text"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4.5}', "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "n": true}', "n"),
    ],
)
def test_bad_chat_requests_are_400(server: ServerProcess, body: bytes, param: str | None) -> None:
    for prefix in ("/v1", ""):
        response = httpx.post(server.base_url + prefix + "/chat/completions", content=body,
                              headers={"Content-Type": "application/json"})
        error = assert_openai_error(response, 400)
        assert error["type"] == "invalid_request_error"
        if param:
            assert error["param"] == param, error
            assert f"'{param}'" in error["message"], error  # named as the client wrote it, no union branches


def test_bad_completion_requests_are_400(server: ServerProcess) -> None:
    assert_openai_error(httpx.post(server.base_url + "/v1/completions", json={"prompt": [1, 2, 3]}), 400, "prompt")
    assert_openai_error(httpx.post(server.base_url + "/v1/completions", json={"prompt": []}), 400, "prompt")
    assert_openai_error(httpx.post(server.base_url + "/v1/completions", content=b"nope"), 400)


def test_unknown_route_and_method(server: ServerProcess) -> None:
    error = assert_openai_error(httpx.post(server.base_url + "/v1/nothing/here", json={}), 404)
    assert "/v1/nothing/here" in error["message"]
    assert_openai_error(httpx.get(server.base_url + CHAT), 405)
    assert_openai_error(httpx.get(server.base_url + "/v1/models/unknown-model"), 404, "model")


def test_double_slashes_are_tolerated(server: ServerProcess) -> None:
    response = httpx.post(server.base_url + "/v1//chat/completions",
                          json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    assert httpx.get(server.base_url + "//v1//models/").status_code == 200


def test_authorization_is_ignored_on_an_open_server(server: ServerProcess) -> None:
    response = httpx.post(server.base_url + CHAT, json={"messages": [{"role": "user", "content": "hi"}]},
                          headers={"Authorization": "Bearer sk-whatever"})
    assert response.status_code == 200


def test_health_and_status(server: ServerProcess) -> None:
    assert httpx.get(server.base_url + "/health").json() == {"status": "ok"}
    status = httpx.get(server.base_url + "/status").json()
    assert status["persona"] == "default"
    chain = ["persona-solver-math", "persona-solver-units", "persona-solver-clock", "ovos-solver-wordnet-plugin",
             "ovos-solver-rivescript-plugin", "ovos-solver-failure-plugin"]
    assert status["solvers"] == chain
    assert status["models"] == ["default"]
    assert status["personas"][0]["solvers"] == [{"name": name, "state": "ready"} for name in chain]


def test_api_key(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server("--api-key", "s3cret-key")
    body = {"messages": [{"role": "user", "content": "hi"}]}
    error = assert_openai_error(httpx.post(server.base_url + CHAT, json=body), 401)
    assert error["code"] == "invalid_api_key"
    assert_openai_error(httpx.post(server.base_url + CHAT, json=body, headers={"Authorization": "Bearer wrong"}), 401)
    ok = httpx.post(server.base_url + CHAT, json=body, headers={"Authorization": "Bearer s3cret-key"})
    assert ok.status_code == 200
    # The scheme is case-insensitive (RFC 9110).
    for scheme in ("bearer", "BEARER"):
        lower = httpx.post(server.base_url + CHAT, json=body, headers={"Authorization": f"{scheme} s3cret-key"})
        assert lower.status_code == 200, lower.text
    assert_openai_error(httpx.post(server.base_url + CHAT, json=body, headers={"Authorization": "Basic s3cret-key"}),
                        401)
    assert httpx.get(server.base_url + "/health").status_code == 200
    # Only /health is open: the index lists the models, so it needs the key like every other route.
    assert_openai_error(httpx.get(server.base_url + "/"), 401)
    assert httpx.get(server.base_url + "/", headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
    assert_openai_error(httpx.get(server.base_url + "/status"), 401)
    assert "s3cret-key" not in server.log()


def test_status_never_shows_config_values(start_server: Callable[..., ServerProcess],
                                          write_persona: Callable[..., Path]) -> None:
    secret = "Y7353-SECRET-APPID"
    persona = write_persona({
        "name": "Secretive",
        "solvers": ["no-such-solver", "failure"],
        "no-such-solver": {"appid": secret, "key": secret},
        "failure": {"answers": [1, 2], "api_key": secret},
    })
    server = start_server("--persona", str(persona))
    status = httpx.get(server.base_url + "/status")
    assert secret not in status.text
    states = {s["name"]: s["state"] for s in status.json()["personas"][0]["solvers"]}
    assert states == {"no-such-solver": "error", "failure": "error"}
    answer = httpx.post(server.base_url + CHAT, json={"messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200  # nothing answered: the chain's apology, not an error
    assert answer.json()["choices"][0]["message"]["content"] in dialogs("en")
    assert answer.json()["solver"] is None
    assert secret not in server.log()
