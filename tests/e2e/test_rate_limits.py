"""Per-process limits: requests in flight (`--max-concurrent`) and per-client rate (`--rate-limit`), each a 429
with `Retry-After` in the route's format; `/health` is never limited."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, start_server_process

CHAT = "/v1/chat/completions"
BODY = {"model": "slow", "messages": [{"role": "user", "content": "hi"}]}
OLLAMA_BODY = {**BODY, "stream": False}


def _slow_persona(directory: Path, delay: float) -> Path:
    path = directory / "slow.json"
    path.write_text(json.dumps({"name": "slow", "solvers": ["test-fixed"],
                                "test-fixed": {"text": "finally", "delay": delay, "timeout": 60}}))
    return path


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("max-concurrent")
    proc = start_server_process("--persona", str(_slow_persona(tmp, 3.0)), "--max-concurrent", "2",
                                log_path=tmp / "server.log", env=plugin_env)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def rated(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("rate-limit")
    proc = start_server_process("--persona", str(_slow_persona(tmp, 0.0)), "--rate-limit", "3/minute",
                                log_path=tmp / "server.log", env=plugin_env)
    yield proc
    proc.stop()


def assert_429(response: httpx.Response, ollama: bool = False) -> int:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    body = response.json()
    if ollama:
        assert set(body) == {"error"} and isinstance(body["error"], str)
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["type"] == "rate_limit_error"
    return retry_after


async def test_requests_beyond_max_concurrent_get_429_and_health_is_not_limited(busy: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=busy.base_url, timeout=30) as client:
        slow = [asyncio.create_task(client.post(CHAT, json=BODY)) for _ in range(2)]
        await asyncio.sleep(1.0)  # both are in progress now (each takes 3 s)
        assert not any(task.done() for task in slow)
        assert_429(await client.post(CHAT, json=BODY))
        assert_429(await client.post("/api/chat", json=OLLAMA_BODY), ollama=True)
        health = await client.get("/health")
        assert health.status_code == 200
        answers = await asyncio.gather(*slow)
        assert [r.json()["choices"][0]["message"]["content"] for r in answers] == ["finally", "finally"]
        # The slots are free again.
        assert (await client.post(CHAT, json=BODY)).status_code == 200
        assert refused((await client.get("/metrics")).text, "concurrency") == 2


def test_a_client_over_its_rate_gets_429_with_retry_after(rated: ServerProcess) -> None:
    with httpx.Client(base_url=rated.base_url) as client:
        for _ in range(3):
            assert client.post(CHAT, json=BODY).status_code == 200
        retry_after = assert_429(client.post(CHAT, json=BODY))
        assert retry_after <= 60  # one request's share of a minute: about 20 s
        assert_429(client.post("/api/chat", json=OLLAMA_BODY), ollama=True)
        for _ in range(10):
            assert client.get("/health").status_code == 200
        # Counted where they were refused, with the limit's name; the scraper itself is never limited.
        assert refused(client.get("/metrics").text, "rate_limit") >= 2


def refused(metrics: str, limit: str) -> float:
    line = next(line for line in metrics.splitlines()
                if line.startswith(f'persona_server_refused_total{{limit="{limit}"}}'))
    return float(line.rsplit(" ", 1)[1])


def from_address(server: ServerProcess, address: str, **kwargs: object) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, transport=httpx.HTTPTransport(local_address=address),
                        **kwargs)  # type: ignore[arg-type]


def test_without_an_api_key_each_client_address_has_its_own_allowance(rated: ServerProcess) -> None:
    with from_address(rated, "127.0.0.2") as other:
        assert other.post(CHAT, json=BODY).status_code == 200


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(rated: ServerProcess) -> None:
    # 127.0.0.1 is trusted as a proxy (uvicorn's default, FORWARDED_ALLOW_IPS): X-Forwarded-For names the client.
    with httpx.Client(base_url=rated.base_url, headers={"X-Forwarded-For": "203.0.113.7"}) as client:
        for _ in range(3):
            assert client.post(CHAT, json=BODY).status_code == 200
        assert_429(client.post(CHAT, json=BODY))
    with httpx.Client(base_url=rated.base_url, headers={"X-Forwarded-For": "203.0.113.8"}) as client:
        assert client.post(CHAT, json=BODY).status_code == 200
    # From an address that is no trusted proxy the header is ignored: a new value buys no new allowance.
    with from_address(rated, "127.0.0.9") as client:
        for index in range(3):
            assert client.post(CHAT, json=BODY, headers={"X-Forwarded-For": f"198.51.100.{index}"}).status_code == 200
        assert_429(client.post(CHAT, json=BODY, headers={"X-Forwarded-For": "198.51.100.99"}))


def test_with_an_api_key_the_key_is_the_client(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    server = start_server_process("--persona", str(_slow_persona(tmp_path, 0.0)), "--rate-limit", "2/hour",
                                  "--api-key", "sesame", log_path=tmp_path / "server.log", env=plugin_env)
    try:
        headers = {"Authorization": "Bearer sesame"}
        for address in ("127.0.0.3", "127.0.0.4"):
            with from_address(server, address, headers=headers) as client:
                assert client.post(CHAT, json=BODY).status_code == 200
        with from_address(server, "127.0.0.5", headers=headers) as client:
            assert assert_429(client.post(CHAT, json=BODY)) > 60  # a share of an hour
        # A wrong key is refused by the key check, before any allowance is spent.
        with from_address(server, "127.0.0.6", headers={"Authorization": "Bearer wrong"}) as client:
            assert client.post(CHAT, json=BODY).status_code == 401
    finally:
        server.stop()
