"""Credentials inside an OpenAI solver's `api_url`: taken out of the URL, sent upstream as Basic auth only when no
`key` is set, and never in any byte the server sends or logs. A real server process against the scripted
upstream, which records what it received."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import ServerProcess, start_server_process

from .upstream import Reply, Upstream

OPENAI = "ovos-solver-openai-plugin"
FAILURE = "ovos-solver-failure-plugin"
USER = "persona-user-7q"
PASSWORD_IN_URL = "pa%2Fss-9zQ"  # percent-encoded, as a URL carries it
PASSWORD = "pa/ss-9zQ"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
KEY = "sk-url-key-5e6f7a8b"
SECRETS = (USER, PASSWORD, PASSWORD_IN_URL, BASIC, f"{USER}:{PASSWORD}")


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture(scope="module")
def server(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("url-credentials")
    url = f"http://{USER}:{PASSWORD_IN_URL}@127.0.0.1:{upstream.port}/v1"
    files = []
    for name, extra in (("Basic", {}), ("Keyed", {"key": KEY})):
        block = {"api_url": url, "model": name.lower(), "timeout": 2, **extra}
        data = {"name": name, "solvers": [OPENAI, FAILURE], OPENAI: block, FAILURE: {"answers": ["fallback"]}}
        (root / f"{name}.json").write_text(json.dumps(data))
        files += ["--persona", str(root / f"{name}.json")]
    proc = start_server_process(*files, "--log-level", "debug", "--access-log", log_path=root / "server.log")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)


def assert_no_credentials(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


def test_sent_upstream_as_basic_auth_without_a_key(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(Reply(tokens=["Authorised", "."]), model="basic")
    completion = client.chat.completions.create(model="Basic", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "Authorised."
    received = upstream.requests[-1]
    assert received.headers["authorization"] == f"Basic {BASIC}"
    assert received.path == "/v1/chat/completions"


def test_the_key_wins_over_url_credentials(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(Reply(tokens=["Keyed", "."]), model="keyed")
    client.chat.completions.create(model="Keyed", messages=[{"role": "user", "content": "hi"}])
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_never_in_a_response_or_a_log_line(upstream: Upstream, client: openai.OpenAI,
                                           server: ServerProcess) -> None:
    # An upstream that quotes the credentials back in its error, as some proxies do.
    quoted = f"bad credentials {USER}:{PASSWORD} (Authorization: Basic {BASIC})"
    upstream.script(Reply(status=401, error=quoted), Reply(status=401, error=quoted), model="basic")
    answer = httpx.post(server.base_url + "/v1/chat/completions", timeout=30, json={
        "model": "Basic", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.json()["choices"][0]["message"]["content"] == "fallback"
    streamed = httpx.post(server.base_url + "/v1/chat/completions", timeout=30, json={
        "model": "Basic", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    seen = [answer.text, streamed.text]
    for path in ("/status", "/v1/models", "/api/tags", "/"):
        seen.append(httpx.get(server.base_url + path, timeout=10).text)
    seen.append(httpx.post(server.base_url + "/api/show", json={"model": "Basic"}, timeout=10).text)
    for text in seen:
        assert_no_credentials(text)
    log = server.log()
    assert "the upstream answered HTTP 401" in log and "***" in log  # the error was logged, masked
    assert_no_credentials(log)
