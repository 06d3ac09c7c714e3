"""The solver chain through a real server: order, timeouts, failures, history, streaming, cancellation.

Test solvers come from a third-party plugin installed through the `persona_server.solvers` entry-point group.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import ServerProcess

Start = Callable[..., ServerProcess]
Write = Callable[..., Path]


def chat(server: ServerProcess, text: str = "hello", **kwargs: object) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": text}], **kwargs}
    return httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=30)


def test_slow_failing_and_empty_solvers_are_skipped_in_order(
    start_server: Start, write_persona: Write, plugin_env: dict[str, str]
) -> None:
    # Too slow, blank, disabled: each is passed over and the failure solver answers.
    persona = write_persona({
        "name": "Chain",
        "solvers": ["test-fixed", "test-stream", "test-echo", "ovos-solver-failure-plugin"],
        "test-fixed": {"text": "too late", "delay": 5, "timeout": 0.3},
        "test-stream": {"pieces": ["   ", "\n"], "interval": 0.01},
        "test-echo": {"enabled": False},
    })
    server = start_server("--persona", str(persona), env=plugin_env)
    started = time.monotonic()
    response = chat(server)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    body = response.json()
    assert body["solver"] == "ovos-solver-failure-plugin"
    assert elapsed < 3, "a solver past its timeout must not hold the answer"
    log = server.log()
    assert "'test-fixed' skipped: no answer within 0.3 s" in log


def test_a_raising_solver_is_logged_and_skipped(start_server: Start, write_persona: Write,
                                                plugin_env: dict[str, str]) -> None:
    persona = write_persona({
        "solvers": ["test-fixed", "test-echo"],
        "test-fixed": {"text": "never", "fail": True},
    })
    server = start_server("--persona", str(persona), env=plugin_env)
    body = chat(server, "who answers").json()
    assert body["solver"] == "test-echo"
    assert body["choices"][0]["message"]["content"] == "echo: who answers (1 messages)"
    assert "RuntimeError: this solver fails on purpose" in server.log()


def test_chat_capable_solvers_see_the_whole_history(start_server: Start, write_persona: Write,
                                                    plugin_env: dict[str, str]) -> None:
    server = start_server("--persona", str(write_persona({"solvers": ["test-history"]})), env=plugin_env)
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    completion = client.chat.completions.create(model="", messages=[
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
    ])
    assert completion.choices[0].message.content == "system=S | user=U1 | assistant=A1 | user=U2"


def test_streaming_sends_pieces_as_they_come(start_server: Start, write_persona: Write,
                                             plugin_env: dict[str, str]) -> None:
    persona = write_persona({
        "solvers": ["test-stream"],
        "test-stream": {"pieces": ["one", " two", " three", " four"], "interval": 0.4},
    })
    server = start_server("--persona", str(persona), env=plugin_env)
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    started = time.monotonic()
    arrivals: list[tuple[float, str]] = []
    for chunk in client.chat.completions.create(model="", messages=[{"role": "user", "content": "go"}], stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic() - started, chunk.choices[0].delta.content))
    assert "".join(text for _, text in arrivals) == "one two three four"
    # The first piece arrives long before the solver has produced the last one (>= 1.2 s later).
    assert arrivals[0][0] < arrivals[-1][0] - 0.8


def test_client_disconnect_cancels_the_chain(start_server: Start, write_persona: Write,
                                             plugin_env: dict[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "cancelled.txt"
    persona = write_persona({
        "solvers": ["test-stream"],
        "test-stream": {"pieces": [f" w{i}" for i in range(100)], "interval": 0.2, "marker": str(marker)},
    })
    server = start_server("--persona", str(persona), env=plugin_env)
    body = {"messages": [{"role": "user", "content": "go"}], "stream": True}
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json=body, timeout=10) as response:
        for line in response.iter_lines():
            if '"w1"' in line or " w1" in line:
                break
    deadline = time.monotonic() + 5
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists() and marker.read_text() == "cancelled"
    # And the server is still serving.
    assert httpx.get(server.base_url + "/health").status_code == 200


def test_non_streaming_disconnect_cancels_a_slow_solver(start_server: Start, write_persona: Write,
                                                        plugin_env: dict[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "cancelled.txt"
    persona = write_persona({
        "solvers": ["test-fixed"],
        "test-fixed": {"text": "late", "delay": 30, "timeout": 60, "marker": str(marker)},
    })
    server = start_server("--persona", str(persona), env=plugin_env)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.base_url + "/v1/chat/completions",
                   json={"messages": [{"role": "user", "content": "x"}]}, timeout=0.5)
    deadline = time.monotonic() + 5
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the server must stop working on an answer nobody waits for"


def test_slow_stream_gets_keepalive_comment_pings(start_server: Start, write_persona: Write,
                                                  plugin_env: dict[str, str]) -> None:
    persona = write_persona({
        "solvers": ["test-fixed"],
        "test-fixed": {"text": "finally", "delay": 1.5},
    })
    server = start_server("--persona", str(persona), env={**plugin_env, "PERSONA_SERVER_PING_INTERVAL": "0.5"})
    body = {"messages": [{"role": "user", "content": "x"}], "stream": True}
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json=body, timeout=10) as response:
        lines = [line for line in response.iter_lines() if line]
    assert ": ping" in lines
    assert lines[-1] == "data: [DONE]"
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert "".join(d["choices"][0]["delta"].get("content") or "" for d in data) == "finally"


def test_a_blocking_solver_does_not_block_the_server(start_server: Start, write_persona: Write,
                                                     plugin_env: dict[str, str], tmp_path: Path) -> None:
    import threading

    marker = tmp_path / "started.txt"
    persona = write_persona({"solvers": ["test-blocking"], "test-blocking": {"seconds": 3, "marker": str(marker)}})
    server = start_server("--persona", str(persona), env=plugin_env)
    replies: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: replies.append(chat(server, "sleep")))
    slow.start()
    while not marker.exists():
        time.sleep(0.02)
    # While the solver's thread sleeps, the event loop keeps serving other requests.
    assert httpx.get(server.base_url + "/health", timeout=10).status_code == 200
    assert httpx.get(server.base_url + "/v1/models", timeout=10).status_code == 200
    assert slow.is_alive(), "the blocking answer finished first: the other requests waited for it"
    slow.join(timeout=30)
    assert replies and replies[0].json()["choices"][0]["message"]["content"] == "woke up"
