"""Every piece of work ends: a client that leaves cancels the solvers and closes their upstream requests.

A real server process serves an LLM persona over the scripted upstream; clients leave streamed and whole
answers on every protocol, and the upstream (the far side) says when its connection was closed.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ServerProcess, start_server_process

from .upstream import Recorded, Reply, Upstream

OPENAI = "ovos-solver-openai-plugin"
FAILURE = "ovos-solver-failure-plugin"

# (route, body) for each streaming route; `{q}` is the question, unique per test so its upstream request can be
# told from the others.
ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "{q}"}]}),
    "completions": ("/v1/completions", {"prompt": "{q}"}),
    "responses": ("/v1/responses", {"input": "{q}"}),
    "ollama-chat": ("/api/chat", {"messages": [{"role": "user", "content": "{q}"}]}),
    "ollama-generate": ("/api/generate", {"prompt": "{q}"}),
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


def _start(upstream: Upstream, root: Any, *extra_args: str) -> ServerProcess:
    files = []
    for name, extra in (("Slow", {}), ("Cut", {"deadline": 1.5})):
        block = {"api_url": upstream.base_url, "model": name.lower(), "timeout": 5, **extra}
        data = {"name": name, "solvers": [OPENAI, FAILURE], OPENAI: block, FAILURE: {"answers": ["fallback"]}}
        path = root / f"{name}.json"
        path.write_text(json.dumps(data))
        files += ["--persona", str(path)]
    return start_server_process(*files, *extra_args, log_path=root / "server.log")


@pytest.fixture(scope="module")
def server(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = _start(upstream, tmp_path_factory.mktemp("cancel"))
    yield proc
    proc.stop()


def body_for(route: str, question: str, stream: bool) -> tuple[str, dict[str, Any]]:
    path, template = ROUTES[route]
    body = json.loads(json.dumps(template).replace("{q}", question))
    return path, {"model": "Slow", "stream": stream, **body}


def request_for(upstream: Upstream, question: str, timeout: float = 10) -> Recorded:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in list(upstream.requests):
            if any(question in str(m.get("content")) for m in record.body.get("messages", [])):
                return record
        time.sleep(0.01)
    raise AssertionError(f"the upstream never got a request for {question!r}: {upstream.requests[-3:]}")


def wait_closed(record: Recorded, timeout: float = 5) -> float:
    deadline = time.monotonic() + timeout
    while record.closed_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert record.closed_at is not None, "the upstream request was never closed"
    return record.closed_at


@pytest.mark.parametrize("route", list(ROUTES))
def test_leaving_a_stream_closes_the_upstream_request(route: str, upstream: Upstream,
                                                      server: ServerProcess) -> None:
    question = f"stream forever {uuid.uuid4().hex}"
    upstream.script(Reply(tokens=[" more"], delay=0.05, forever=True), model="slow")
    path, body = body_for(route, question, stream=True)
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        with client.stream("POST", path, json=body) as response:
            assert response.status_code == 200
            received = b""
            for chunk in response.iter_raw():
                received += chunk
                if received.count(b"more") >= 3:  # the upstream's words are coming through: leave
                    break
        left = time.monotonic()
    record = request_for(upstream, question)
    assert wait_closed(record) - left < 1.0
    assert record.disconnected and record.finished is None


def _leave_a_whole_answer(upstream: Upstream, server: ServerProcess, route: str) -> None:
    """Ask for a whole answer the upstream never finishes, leave after 0.7 s: its request is closed within 1 s."""
    question = f"answer forever {uuid.uuid4().hex}"
    upstream.script(Reply(tokens=[" more"], delay=0.05, forever=True), model="slow")
    path, body = body_for(route, question, stream=False)
    with httpx.Client(base_url=server.base_url, timeout=0.7) as client, pytest.raises(httpx.ReadTimeout):
        client.post(path, json=body)
    left = time.monotonic()
    record = request_for(upstream, question)
    assert wait_closed(record) - left < 1.0
    assert record.disconnected and record.finished is None


@pytest.mark.parametrize("route", list(ROUTES))
def test_leaving_a_whole_answer_closes_the_upstream_request(route: str, upstream: Upstream,
                                                            server: ServerProcess) -> None:
    _leave_a_whole_answer(upstream, server, route)


def test_leaving_a_whole_answer_closes_the_upstream_request_over_h11(upstream: Upstream,
                                                                     tmp_path: Any) -> None:
    """With httptools the connection cancels the answer itself; with h11 a task watches for the disconnect."""
    proc = _start(upstream, tmp_path, "--http", "h11")
    try:
        _leave_a_whole_answer(upstream, proc, "chat")
    finally:
        proc.stop()


async def _abandon(client: httpx.AsyncClient, route: str, index: int) -> None:
    path, body = body_for(route, f"abandoned {index}", stream=True)
    async with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        async for _ in response.aiter_raw():
            break  # the first chunk is enough: leave


async def _abandon_many(base_url: str, count: int, concurrency: int) -> None:
    routes = list(ROUTES)
    queue = iter(range(count))
    # A fresh connection per stream: a client that leaves mid-stream closes its connection.
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=20, limits=limits) as client:
        async def worker() -> None:
            for index in queue:
                await _abandon(client, routes[index % len(routes)], index)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _pool(server: ServerProcess) -> dict[str, int]:
    pool: dict[str, int] = httpx.get(server.base_url + "/status", timeout=5).json()["http_pool"]
    return pool


def test_thousands_of_abandoned_streams_leave_the_pool_empty(upstream: Upstream, server: ServerProcess) -> None:
    count = 2000
    upstream.script(*[Reply(tokens=[" more"], delay=0.02, forever=True) for _ in range(count)], model="slow")
    try:
        asyncio.run(_abandon_many(server.base_url, count, concurrency=50))
    finally:
        upstream.clear_scripts()
    deadline = time.monotonic() + 5
    while (_pool(server)["active"] or upstream.open_connections) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pool(server)["active"] == 0
    assert upstream.open_connections == 0, "every upstream connection of an abandoned stream is closed"
    # ... and a persona that needs the pool answers at once.
    upstream.script(Reply(tokens=["Still", " here", "."]), model="slow")
    started = time.monotonic()
    reply = httpx.post(server.base_url + "/v1/chat/completions", timeout=10,
                       json={"model": "Slow", "messages": [{"role": "user", "content": "are you there"}]})
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] == "Still here."
    assert time.monotonic() - started < 2


# -- deadlines ------------------------------------------------------------------------------------------------


def test_a_never_ending_stream_is_cut_at_the_solvers_deadline(upstream: Upstream, server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0, timeout=20)
    question = f"never stop {uuid.uuid4().hex}"
    upstream.script(Reply(tokens=[" on"], delay=0.05, forever=True), model="cut")
    started = time.monotonic()
    stream = client.chat.completions.create(model="Cut", stream=True,
                                            messages=[{"role": "user", "content": question}])
    text, finish = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    took = time.monotonic() - started
    assert 1.4 < took < 4, "the stream ends at the 1.5 s deadline"
    assert text.startswith(" on on") or text.startswith("on on"), text[:40]
    assert finish == "length", "a cut answer says so"
    assert wait_closed(request_for(upstream, question)) - started < 4


@pytest.mark.parametrize("route", ["chat", "ollama-generate"])
def test_a_never_ending_whole_answer_is_cut_at_the_solvers_deadline(route: str, upstream: Upstream,
                                                                    server: ServerProcess) -> None:
    question = f"never stop {uuid.uuid4().hex}"
    upstream.script(Reply(tokens=[" on"], delay=0.05, forever=True), model="cut")
    path, body = body_for(route, question, stream=False)
    started = time.monotonic()
    reply = httpx.post(server.base_url + path, json={**body, "model": "Cut"}, timeout=20)
    took = time.monotonic() - started
    assert reply.status_code == 200
    data = reply.json()
    if route == "chat":
        assert data["choices"][0]["finish_reason"] == "length"
        assert data["choices"][0]["message"]["content"].startswith("on on")
        assert data["solver"] == OPENAI
    else:
        assert data["done_reason"] == "length"
        assert data["response"].startswith("on on")
    assert 1.4 < took < 4
    assert wait_closed(request_for(upstream, question)) - started < 4
    assert "cut short" in server.log()
