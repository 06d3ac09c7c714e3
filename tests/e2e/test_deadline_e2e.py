"""Solver deadlines and the request budget through a real server, with the test solvers of tests/plugins.

`deadline` bounds a solver's whole turn (its `timeout` only the silence between pieces); `--request-timeout`
bounds the request, and what still runs a moment after it is cancelled with a 504 in the client's format.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import ServerProcess, persona_args, start_server_process


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("deadline")
    personas = {
        # Slow but never silent for long: only the deadline stops it.
        "Slow": {"solvers": ["test-fixed", "test-echo"],
                 "test-fixed": {"text": "too late", "delay": 3, "timeout": 10, "deadline": 1,
                                "marker": str(root / "cancelled")}},
        "Chatty": {"solvers": ["test-stream", "test-echo"],
                   "test-stream": {"pieces": [f" p{i}" for i in range(100)], "interval": 0.05, "timeout": 5,
                                   "deadline": 1}},
        "Loading": {"solvers": ["test-fixed"], "test-fixed": {"text": "loaded", "load_delay": 30}},
    }
    args = persona_args(root, {f"{name}.json": {"name": name, **data} for name, data in personas.items()})
    proc = start_server_process(*args, "--request-timeout", "2", log_path=root / "server.log", env=plugin_env,
                                wait_ready=False)
    proc.extra["root"] = root
    yield proc
    proc.stop()


def test_a_whole_answer_past_its_deadline_is_skipped(server: ServerProcess) -> None:
    started = time.monotonic()
    reply = httpx.post(server.base_url + "/v1/chat/completions", timeout=10,
                       json={"model": "Slow", "messages": [{"role": "user", "content": "hi"}]})
    took = time.monotonic() - started
    assert reply.status_code == 200
    assert reply.json()["solver"] == "test-echo", "the chain moved on"
    assert 0.9 < took < 2, "at the 1 s deadline, not the 10 s timeout"
    assert (server.extra["root"] / "cancelled").read_text() == "cancelled", "the slow solver was cancelled"
    assert "its deadline of 1 s is reached" in server.log()


def test_a_stream_is_cut_at_its_deadline(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0, timeout=10)
    started = time.monotonic()
    stream = client.chat.completions.create(model="Chatty", stream=True,
                                            messages=[{"role": "user", "content": "talk"}])
    text, finish = "", None
    for chunk in stream:
        text += chunk.choices[0].delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    assert time.monotonic() - started < 2.5
    assert text.startswith("p0 p1 p2") and "p99" not in text
    assert finish == "length"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat"])
def test_work_past_the_request_budget_is_cancelled_with_a_504(path: str, server: ServerProcess) -> None:
    # A persona still loading makes its first request wait; the 2 s budget ends the wait.
    started = time.monotonic()
    reply = httpx.post(server.base_url + path, timeout=10,
                       json={"model": "Loading", "stream": False, "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 504
    assert time.monotonic() - started < 5
    error = reply.json()["error"]
    if path.startswith("/api/"):
        assert "request budget of 2 s" in error
    else:
        assert "request budget of 2 s" in error["message"] and error["code"] == "timeout"
