"""The deployment files (deploy/, Dockerfile) parse, and agree with each other and with the CLI: the flags and
environment they use exist, the probes hit /health on the port served, the Services select the Deployments, the
state URL names the Redis they deploy. `docker compose config` runs too where Docker Compose is installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from persona_server.cli import build_parser
from persona_server.settings import DEFAULT_PORT
from persona_server.state import open_state
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _parses(args: list[str]) -> None:
    """The CLI accepts these arguments (argparse exits on an unknown flag)."""
    build_parser().parse_args(args)


def _compose() -> dict[str, Any]:
    [compose] = _documents(DEPLOY / "compose.yaml")
    return compose


def test_compose_runs_replicas_behind_a_balancer_sharing_redis() -> None:
    services = _compose()["services"]
    server, redis, nginx = services["persona-server"], services["redis"], services["nginx"]
    assert server["deploy"]["replicas"] >= 2
    state = server["environment"]["PERSONA_SERVER_STATE"]
    assert state == "redis://redis:6379/0"
    open_state(state)  # a URL the server accepts
    _parses(server["command"])
    assert "--save" in redis["command"] and "volatile-lru" in redis["command"]
    assert nginx["ports"] == [f"{DEFAULT_PORT}:{DEFAULT_PORT}"]
    conf = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    assert re.search(rf"server persona-server:{DEFAULT_PORT}\b", conf)
    assert "proxy_buffering off" in conf  # streamed answers
    assert server["depends_on"]["redis"]["condition"] == "service_healthy"
    assert (DEPLOY / server["build"]["context"]).resolve() == ROOT


def test_kubernetes_deployment_is_ready_on_health_and_selected_by_its_service() -> None:
    docs = {(doc["kind"], doc["metadata"]["name"]): doc
            for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")) for doc in _documents(path)}
    assert set(docs) == {("Deployment", "persona-server"), ("Service", "persona-server"),
                         ("Deployment", "persona-server-redis"), ("Service", "persona-server-redis")}
    for name in ("persona-server", "persona-server-redis"):
        deployment, service = docs[("Deployment", name)], docs[("Service", name)]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert service["spec"]["selector"].items() <= labels.items()
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert service["spec"]["ports"][0]["targetPort"] in ports
    server = docs[("Deployment", "persona-server")]
    assert server["spec"]["replicas"] >= 2
    [container] = server["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert {p["containerPort"] for p in container["ports"]} == {DEFAULT_PORT}
    args = container["args"]
    _parses(args)
    assert args[args.index("--port") + 1] == str(DEFAULT_PORT)
    env = {item["name"]: item for item in container["env"]}
    state = env["PERSONA_SERVER_STATE"]["value"]
    open_state(state)
    redis_port = docs[("Service", "persona-server-redis")]["spec"]["ports"][0]["port"]
    assert state == f"redis://persona-server-redis:{redis_port}/0"
    assert "secretKeyRef" in env["PERSONA_SERVER_API_KEY"]["valueFrom"]  # never a key in the manifest


def test_dockerfile_serves_the_cli_with_the_redis_extra() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert 'pip install ".[redis]"' in text
    assert 'ENTRYPOINT ["persona-server"]' in text and f"EXPOSE {DEFAULT_PORT}" in text
    assert "/health" in text


def test_docker_compose_accepts_the_file() -> None:
    compose = shutil.which("docker-compose")
    command = [compose] if compose else None
    if command is None and shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        command = ["docker", "compose"] if probe.returncode == 0 else None
    if command is None:
        pytest.skip("Docker Compose is not installed (optional: the YAML is checked above)")
    result = subprocess.run([*command, "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
                            capture_output=True, text=True, env={**os.environ, "PERSONA_SERVER_API_KEY": "x"})
    assert result.returncode == 0, result.stderr
