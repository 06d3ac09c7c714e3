"""Start-up: the server listens at once and says it is loading until heavy solver data is ready."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import ServerProcess


def test_listens_while_loading_and_health_turns_ok(start_server: Callable[..., ServerProcess],
                                                   write_persona: Callable[..., Path],
                                                   plugin_env: dict[str, str]) -> None:
    # A solver that takes 3 s to load: the loading state is seen every time (AIML, with its brain cached by an
    # earlier test, can be ready in under a second, before the first request).
    persona = write_persona({"name": "Slowstart", "solvers": ["test-fixed", "failure"],
                             "test-fixed": {"text": "loaded", "load_delay": 3}})
    server = start_server("--persona", str(persona), wait_ready=False, env=plugin_env)
    first = httpx.get(server.base_url + "/health", timeout=5)
    assert first.status_code == 503
    assert first.json() == {"status": "loading"}
    status = httpx.get(server.base_url + "/status").json()
    assert status["status"] == "loading"
    assert status["personas"][0]["solvers"][0]["state"] == "loading"
    # A question asked now waits for the solver it needs rather than skipping it.
    answer = httpx.post(server.base_url + "/v1/chat/completions", timeout=60,
                        json={"messages": [{"role": "user", "content": "hello"}]})
    assert answer.json()["solver"] == "test-fixed"
    deadline = time.monotonic() + 60
    while httpx.get(server.base_url + "/health").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert httpx.get(server.base_url + "/health").json() == {"status": "ok"}
