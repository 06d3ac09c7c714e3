"""Fixtures for the MCP tests: the tiny toolbox server (over stdio and over streamable HTTP), a scripted upstream."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import cli_env, free_port, stop_process
from tests.llm.upstream import Upstream

TOOLBOX_SERVER = Path(__file__).with_name("toolbox_server.py")


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_upstream(request: pytest.FixtureRequest) -> None:
    """The module's upstream starts every test with no script and no record."""
    if "upstream" in request.fixturenames:
        upstream: Upstream = request.getfixturevalue("upstream")
        upstream.clear_scripts()
        upstream.requests.clear()


def events(path: Path) -> list[dict[str, Any]]:
    """The toolbox server's log: its start and every call it received."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stdio_toolbox(log: Path, **extra: Any) -> dict[str, Any]:
    """A toolbox entry that runs the tiny server over stdio."""
    env = {"TOOLBOX_LOG": str(log), **extra.pop("env", {})}
    return {"command": sys.executable, "args": [str(TOOLBOX_SERVER)], "env": env, **extra}


@dataclass
class HttpToolbox:
    url: str
    log: Path
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def http_toolbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpToolbox]:
    """The tiny server over streamable HTTP, in a process of its own for the module."""
    root = tmp_path_factory.mktemp("http-toolbox")
    port = free_port()
    log = root / "events.jsonl"
    process = subprocess.Popen([sys.executable, str(TOOLBOX_SERVER), "http", str(port)],
                               env=cli_env({"TOOLBOX_LOG": str(log)}), stdout=subprocess.DEVNULL,
                               stderr=(root / "stderr.log").open("wb"))
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the HTTP toolbox server did not start: "
                                   + (root / "stderr.log").read_text()) from None
            time.sleep(0.1)
    try:
        yield HttpToolbox(url, log, process)
    finally:
        stop_process(process)


@pytest.fixture
def test_solvers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The look-up test solver of tests/llm/helpers.py under the name `fixed-a`."""
    from persona_server.solvers import registry

    monkeypatch.setitem(registry.BUILTINS, "fixed-a", "tests.llm.helpers:FixedSolver")
