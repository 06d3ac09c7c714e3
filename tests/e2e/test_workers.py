"""`--workers N`: N processes serve one port, each with its own personas; access logs only on request."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.conftest import ServerProcess


def test_two_workers_share_the_port(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server("--workers", "2")
    deadline = time.monotonic() + 30
    while server.log().count("Application startup complete") < 2:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    pids = set()
    for _ in range(20):
        # A new connection each time, so either worker may take it.
        with httpx.Client() as client:
            reply = client.post(server.base_url + "/v1/chat/completions",
                                json={"messages": [{"role": "user", "content": "what is a lighthouse"}]})
            assert reply.status_code == 200
            assert reply.json()["solver"] == "ovos-solver-wordnet-plugin"
            pids.add(client.get(server.base_url + "/status").json()["process"])
    assert server.process.pid not in pids, "the parent only supervises; workers answer"
    assert "POST /v1/chat/completions" not in server.log(), "no access log unless --access-log"


def test_access_log_on_request(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server("--access-log")
    httpx.get(server.base_url + "/v1/models")
    time.sleep(0.2)
    assert "GET /v1/models" in server.log()
