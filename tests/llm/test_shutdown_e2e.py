"""The request budget and SIGTERM, through real server processes serving an LLM persona over the scripted upstream.

SIGTERM lets answers in flight finish for `--graceful-timeout` seconds, then ends the rest, closes their upstream
requests and exits 0; a second SIGTERM exits at once. The same with `--workers 2`.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, start_server_process

from .test_cancel_e2e import request_for, wait_closed
from .upstream import Reply, Upstream

OPENAI = "ovos-solver-openai-plugin"
FAILURE = "ovos-solver-failure-plugin"

Start = Callable[..., ServerProcess]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture
def start(upstream: Upstream, tmp_path: Path) -> Iterator[Start]:
    block = {"api_url": upstream.base_url, "model": "llm", "timeout": 5}
    data = {"name": "Llm", "solvers": [OPENAI, FAILURE], OPENAI: block, FAILURE: {"answers": ["fallback"]}}
    persona = tmp_path / "llm.json"
    persona.write_text(json.dumps(data))
    servers: list[ServerProcess] = []

    def run(*args: str) -> ServerProcess:
        server = start_server_process("--persona", str(persona), *args, log_path=tmp_path / f"{len(servers)}.log")
        servers.append(server)
        if "--workers" in args:
            deadline = time.monotonic() + 30
            while server.log().count("Application startup complete") < int(args[args.index("--workers") + 1]):
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.1)
        return server

    yield run
    for server in servers:
        server.stop()


class Reader(threading.Thread):
    """Reads a streamed chat answer in the background, recording what came and how it ended."""

    def __init__(self, server: ServerProcess, question: str) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.question = question
        self.body = b""
        self.ended: str | None = None  # "done" ([DONE] seen) or the error that ended the stream
        self.started = threading.Event()

    def run(self) -> None:
        body = {"model": "Llm", "stream": True, "messages": [{"role": "user", "content": self.question}]}
        try:
            with httpx.stream("POST", self.server.base_url + "/v1/chat/completions", json=body,
                              timeout=60) as response:
                for chunk in response.iter_raw():
                    self.body += chunk
                    if self.body.count(b'"content"') >= 4:
                        self.started.set()
            self.ended = "done" if b"data: [DONE]" in self.body else "closed"
        except httpx.HTTPError as exc:
            self.ended = type(exc).__name__
        finally:
            self.started.set()


def _open_stream(server: ServerProcess, upstream: Upstream, reply: Reply) -> Reader:
    upstream.script(reply, model="llm")
    reader = Reader(server, f"question {uuid.uuid4().hex}")
    reader.start()
    assert reader.started.wait(10), server.log()
    return reader


def _exit_status(server: ServerProcess, within: float) -> tuple[int, float]:
    started = time.monotonic()
    try:
        code = server.process.wait(timeout=within)
    except Exception:
        raise AssertionError(f"still running {within} s after SIGTERM:\n{server.log()[-3000:]}") from None
    return code, time.monotonic() - started


def test_request_budget_cuts_a_never_ending_stream(start: Start, upstream: Upstream) -> None:
    server = start("--request-timeout", "2")
    began = time.monotonic()
    reader = _open_stream(server, upstream, Reply(tokens=[" on"], delay=0.05, forever=True))
    reader.join(10)
    assert reader.ended == "done", "the answer ends properly when the budget is spent"
    assert time.monotonic() - began < 5
    assert b'"finish_reason":"length"' in reader.body
    record = request_for(upstream, reader.question)
    assert wait_closed(record) - began < 5


def test_sigterm_lets_an_answer_in_flight_finish(start: Start, upstream: Upstream) -> None:
    server = start("--graceful-timeout", "10")
    reader = _open_stream(server, upstream, Reply(tokens=[f" w{i}" for i in range(30)], delay=0.05))
    server.process.send_signal(signal.SIGTERM)
    code, _ = _exit_status(server, within=10)
    reader.join(5)
    assert code == 0, server.log()[-2000:]
    assert reader.ended == "done" and b" w29" in reader.body, "the whole answer was sent before the exit"


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_ends_a_never_ending_stream_after_the_grace_period(workers: int, start: Start,
                                                                   upstream: Upstream) -> None:
    server = start("--graceful-timeout", "2", *(["--workers", str(workers)] if workers > 1 else []))
    reader = _open_stream(server, upstream, Reply(tokens=[" on"], delay=0.05, forever=True))
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code, took = _exit_status(server, within=8)
    assert code == 0, server.log()[-2000:]
    assert took > 1.5, "the stream had its grace period"
    reader.join(5)
    assert reader.ended is not None, "the client's stream ended"
    record = request_for(upstream, reader.question)
    assert wait_closed(record) - signalled < 4, "the upstream request was closed"


# A gap shorter than uvicorn's 0.5 s look at its signal queue puts both signals in one batch of the supervisor.
@pytest.mark.parametrize(("workers", "gap"), [(1, 0.5), (2, 0.5), (2, 0.05)])
def test_a_second_sigterm_exits_at_once(workers: int, gap: float, start: Start, upstream: Upstream) -> None:
    server = start("--graceful-timeout", "60", *(["--workers", str(workers)] if workers > 1 else []))
    reader = _open_stream(server, upstream, Reply(tokens=[" on"], delay=0.05, forever=True))
    server.process.send_signal(signal.SIGTERM)
    time.sleep(gap)
    assert server.process.poll() is None, "the first SIGTERM waits for the stream"
    server.process.send_signal(signal.SIGTERM)
    code, took = _exit_status(server, within=5)
    assert code == 0, server.log()[-2000:]
    assert took < 3
    reader.join(5)
    assert reader.ended is not None
    wait_closed(request_for(upstream, reader.question))
