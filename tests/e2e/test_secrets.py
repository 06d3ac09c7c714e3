"""Secrets of a persona file appear in no byte the server sends or logs, and in no CLI output.

The persona holds every kind of secret: a Wolfram appid, an LLM key, credentials inside an `api_url`, a token and a
password. Its upstreams are hostile in the way real ones are: they quote the credentials they were sent in their
error messages (Wolfram's "Invalid appid", OpenAI's "Incorrect API key provided: ..."). The server runs at debug
level, and is asked on every route.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.conftest import ServerProcess, free_port, run_cli, start_server_process

APPID = "WOLF-APPID-7f3k9q"
KEY = "sk-live-SECRETKEY-4e8w2m"
USER, PASSWORD = "alice", "s3cr3t-pass-9x7v"
TOKEN = "tok-DDG-918273645"
DB_PASSWORD = "hunter2-db-pw-5511"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SECRETS = [APPID, KEY, PASSWORD, BASIC, TOKEN, DB_PASSWORD, f"{USER}:{PASSWORD}"]
ANSWER = "All good from the upstream."


def _quoting_upstream() -> Starlette:
    async def chat(request: Request) -> Response:
        body = orjson.loads(await request.body())
        auth = request.headers.get("authorization", "")
        if body.get("model") == "refuses" or "quote me" in str(body["messages"][-1].get("content")):
            # As OpenAI does: the error quotes the key it was sent.
            return JSONResponse({"error": {"message": f"Incorrect API key provided: {auth}", "type": "invalid",
                                           "param": None, "code": "invalid_api_key"}}, status_code=401)
        if not auth.startswith("Basic "):
            return JSONResponse({"error": {"message": f"expected Basic auth, got {auth!r}"}}, status_code=401)
        return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": "ok", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}]})

    async def wolfram(request: Request) -> Response:
        # Wolfram's own error text, with the appid quoted back.
        return PlainTextResponse(f"Error 1: Invalid appid {request.query_params.get('appid')}", status_code=501)

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/v1/spoken", wolfram), Route("/v1/result", wolfram)])


@pytest.fixture(scope="module")
def upstream_port() -> Iterator[int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_quoting_upstream(), host="127.0.0.1", port=port, log_level="error",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def persona_file(tmp_path_factory: pytest.TempPathFactory, upstream_port: int) -> Path:
    base = f"http://127.0.0.1:{upstream_port}"
    data = {
        "name": "Leaky",
        "solvers": ["ovos-solver-plugin-wolfram-alpha", "ovos-solver-openai-plugin",
                    "ovos-solver-openai-persona-plugin", "ovos-solver-failure-plugin"],
        "ovos-solver-plugin-wolfram-alpha": {"appid": APPID, "base_url": base},
        "ovos-solver-openai-plugin": {"api_url": f"{base}/v1", "key": KEY, "model": "refuses"},
        "ovos-solver-openai-persona-plugin": {"api_url": f"http://{USER}:{PASSWORD}@127.0.0.1:{upstream_port}/v1",
                                              "model": "ok"},
        "ovos-solver-failure-plugin": {"token": TOKEN, "database": {"password": DB_PASSWORD}},
    }
    path = tmp_path_factory.mktemp("secrets") / "leaky.json"
    path.write_bytes(orjson.dumps(data))
    return path


@pytest.fixture(scope="module")
def server(persona_file: Path) -> Iterator[ServerProcess]:
    proc = start_server_process("--persona", str(persona_file), "--log-level", "debug", "--access-log",
                                "--strict-models", log_path=persona_file.parent / "server.log")
    yield proc
    proc.stop()


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked in {where}"


def _everything(base: str) -> list[tuple[str, str, dict[str, Any] | bytes | None]]:
    chat = {"model": "Leaky", "messages": [{"role": "user", "content": "what is the population of Lisbon?"}]}
    return [
        ("POST", "/v1/chat/completions", chat),
        ("POST", "/v1/chat/completions", {**chat, "stream": True}),
        ("POST", "/v1/completions", {"model": "Leaky", "prompt": "how far is the moon?"}),
        ("POST", "/v1/responses", {"model": "Leaky", "input": "how far is the moon?"}),
        ("POST", "/v1/responses", {"model": "Leaky", "input": "how far is the moon?", "stream": True}),
        ("POST", "/api/chat", {**chat, "stream": False}),
        ("POST", "/api/chat", chat),
        ("POST", "/api/generate", {"model": "Leaky", "prompt": "how far is the moon?"}),
        ("POST", "/v1/chat/completions", {"model": "Leaky", "messages": [{"role": "user", "content": "quote me"}]}),
        ("POST", "/api/show", {"model": "Leaky"}),
        ("POST", "/api/show", {"model": "nope"}),
        ("GET", "/api/tags", None),
        ("GET", "/api/ps", None),
        ("GET", "/status", None),
        ("GET", "/v1/models", None),
        ("GET", "/v1/models/Leaky", None),
        ("GET", "/", None),
        ("POST", "/v1/chat/completions", {"model": "unknown", "messages": chat["messages"]}),
        ("POST", "/v1/chat/completions", b"{broken"),
        ("POST", "/v1/chat/completions", {"model": "Leaky", "messages": [{"role": "wizard", "content": APPID}]}),
        ("GET", "/no/such/route", None),
    ]


def test_no_secret_in_any_response_or_log_line(server: ServerProcess) -> None:
    answered = 0
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for method, path, body in _everything(server.base_url):
            kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
            response = client.request(method, path, **(kwargs if body is not None else {}))
            raw = "\n".join(f"{k}: {v}" for k, v in response.headers.items()) + "\n" + response.text
            assert response.status_code < 500, (path, response.text)
            assert_no_secret(raw, f"{method} {path}")
            answered += ANSWER in response.text
    # The chain got past the refusing upstreams to the one with credentials in its URL (sent as Basic auth).
    assert answered >= 4
    log = server.log()
    assert "Incorrect API key provided" in log or "401" in log  # the refusal was logged ...
    assert_no_secret(log, "the server log")  # ... without the key it quoted


def test_no_secret_in_cli_output(persona_file: Path) -> None:
    result = run_cli("validate", str(persona_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_secret(result.stdout + result.stderr, "validate")
    result = run_cli("ask", "--json", "--log-level", "debug", "--persona", str(persona_file), "what is the speed",
                     "of light?")
    assert ANSWER in result.stdout, result.stdout + result.stderr
    assert_no_secret(result.stdout + result.stderr, "ask")
