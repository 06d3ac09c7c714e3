"""Shared fixtures: real server processes on loopback, and persona files written on the fly."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from persona_server.persona import Persona, parse_persona

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "personas"


def require_binary(name: str, package: str) -> str:
    """The path of a system program a test needs: skipped where it is missing, a failure under CI (`CI=true`),
    which installs it (.ci/run), so CI can never pass by skipping."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {package})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Never let a test reach the live internet through a proxy setting of the machine.
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(key, None)
    env.update(extra or {})
    return env


def run_cli(*args: str, timeout: float = 60, env: dict[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `persona-server` CLI (as `python -m persona_server`) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "persona_server", *args],
        capture_output=True, text=True, timeout=timeout, env=cli_env(env), input=input, cwd=ROOT,
    )


def stop_process(process: subprocess.Popen[Any]) -> None:
    """End a server a test started: SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass
class ServerProcess:
    """A `persona-server` process listening on 127.0.0.1."""

    process: subprocess.Popen[str]
    port: int
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        stop_process(self.process)


def start_server_process(*args: str, log_path: Path, env: dict[str, str] | None = None,
                         wait_ready: bool = True, timeout: float = 60) -> ServerProcess:
    port = free_port()
    log_file = log_path.open("w", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "persona_server", *args, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log_file, stderr=subprocess.STDOUT, text=True, env=cli_env(env), cwd=ROOT,
    )
    server = ServerProcess(process, port, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            response = httpx.get(f"{server.base_url}/health", timeout=2)
            if response.status_code == 200 or not wait_ready:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"server not ready within {timeout} s:\n{server.log()}")
        time.sleep(0.05)


def persona_args(root: Path, files: dict[str, dict[str, Any]]) -> list[str]:
    """Write each persona (file name -> persona) into `root` and return the `--persona FILE ...` arguments."""
    args: list[str] = []
    for name, data in files.items():
        path = root / name
        path.write_text(json.dumps(data), encoding="utf-8")
        args += ["--persona", str(path)]
    return args


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """`start_server(*cli_args, env=None, wait_ready=True)` starts a real server; all are stopped afterwards."""
    servers: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, wait_ready: bool = True) -> ServerProcess:
        server = start_server_process(
            *args, log_path=tmp_path / f"server-{len(servers)}.log", env=env, wait_ready=wait_ready
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def write_persona(tmp_path: Path) -> Callable[..., Path]:
    """`write_persona(data, name=None)` writes a persona file (dict -> JSON, str written as is)."""
    counter = iter(range(1_000_000))

    def write(data: dict[str, Any] | str, filename: str | None = None) -> Path:
        path = tmp_path / (filename or f"persona-{next(counter)}.json")
        path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
        return path

    return write


TEST_SOLVERS = {
    "test-echo": "EchoSolver",
    "test-history": "HistorySolver",
    "test-fixed": "FixedSolver",
    "test-stream": "StreamSolver",
    "test-blocking": "BlockingSleepSolver",
}


@pytest.fixture(scope="session")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment that installs tests/plugins as a third-party solver package (a real entry point)."""
    site = tmp_path_factory.mktemp("plugin-site")
    dist = site / "persona_test_solvers-0.0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: persona-test-solvers\nVersion: 0.0.1\n")
    lines = [f"{name} = persona_test_solvers:{cls}" for name, cls in TEST_SOLVERS.items()]
    (dist / "entry_points.txt").write_text("[persona_server.solvers]\n" + "\n".join(lines) + "\n")
    (site / "persona_test_solvers.py").write_text((ROOT / "tests" / "plugins" / "persona_test_solvers.py").read_text())
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """One client for in-process personas, as the server lends its solvers one."""
    # trust_env=False: a proxy setting of the machine must never route loopback test traffic.
    async with httpx.AsyncClient(trust_env=False, follow_redirects=True) as client:
        yield client


@pytest.fixture
async def make_persona(http: httpx.AsyncClient) -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[Persona]]]:
    """`await make_persona(data)`: an in-process persona, started and loaded; closed after the test."""
    personas: list[Persona] = []

    async def make(data: dict[str, Any]) -> Persona:
        persona = Persona(parse_persona(data, source="<test>", default_name="test"), http=lambda: http)
        personas.append(persona)
        await persona.start()
        await persona.wait_ready()
        return persona

    yield make
    for persona in personas:
        await persona.close()


@pytest.fixture(scope="module")
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cache directory (PERSONA_SERVER_CACHE) of the test module's own, so heavy solver data (WordNet, the
    AIML brain) is prepared once per module and never in the user's home."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSONA_SERVER_CACHE", str(root))
        yield root


def wait_for_file(path: Path, timeout: float = 5) -> str:
    """The text of a marker file a test solver writes (e.g. 'cancelled'), or "" if none appears in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        time.sleep(0.05)
    return ""


@pytest.fixture(scope="session", autouse=True)
def isolated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every server a test starts keeps its uploads and vector stores (PERSONA_SERVER_DATA_DIR) in a temporary
    directory, never in the user's ~/.local/share; tests that need their own pass --data-dir."""
    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSONA_SERVER_DATA_DIR", str(root))
        yield root
