"""The original server's vendor-prefixed routes with the real clients, and personas built from the environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.conftest import ServerProcess, start_server_process
from tests.llm.upstream import Reply, Upstream


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("prefixed")
    path = root / "p.json"
    path.write_text(json.dumps({"name": "Prefixed", "handlers": ["ovos-wordnet-plugin", "failure"]}))
    proc = start_server_process("--personas-dir", str(root), log_path=root / "server.log")
    yield proc
    proc.stop()


def test_the_openai_client_on_the_openai_prefix(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=server.base_url + "/openai/v1", api_key="x", max_retries=0, timeout=30)
    assert [m.id for m in client.models.list()] == ["Prefixed", "all-minilm"]
    reply = client.chat.completions.create(model="Prefixed",
                                           messages=[{"role": "user", "content": "what is a lighthouse"}])
    assert "tower" in reply.choices[0].message.content.lower()
    stream = client.chat.completions.create(model="Prefixed", stream=True,
                                            messages=[{"role": "user", "content": "what is a lighthouse"}])
    assert "tower" in "".join(c.choices[0].delta.content or "" for c in stream if c.choices).lower()
    assert "tower" in client.completions.create(model="Prefixed", prompt="define lighthouse").choices[0].text
    assert "tower" in client.responses.create(model="Prefixed", input="what is a lighthouse").output_text.lower()


def test_the_ollama_client_on_the_ollama_prefix(server: ServerProcess) -> None:
    client = ollama.Client(host=server.base_url + "/ollama", timeout=30)
    assert [m.model for m in client.list().models] == ["Prefixed:latest", "all-minilm:latest"]
    reply = client.chat(model="Prefixed", messages=[{"role": "user", "content": "what is a lighthouse"}], stream=False)
    assert "tower" in reply["message"]["content"].lower()
    text = "".join(part["response"] for part in client.generate(model="Prefixed", prompt="define lighthouse",
                                                                stream=True))
    assert "tower" in text.lower()


def test_errors_under_each_prefix_are_in_that_protocol_s_shape(server: ServerProcess) -> None:
    bad = httpx.post(server.base_url + "/ollama/api/chat", content=b"{not json", timeout=10)
    assert bad.status_code == 400 and isinstance(bad.json()["error"], str)
    missing = httpx.get(server.base_url + "/ollama/api/nothing-here", timeout=10)
    assert missing.status_code == 404 and isinstance(missing.json()["error"], str)
    bad = httpx.post(server.base_url + "/openai/v1/chat/completions", content=b"{not json", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"


def test_a_persona_from_llm_environment_variables_serves_a_scripted_upstream(start_server, tmp_path: Path) -> None:
    secret = "sk-from-the-environment-77"
    with Upstream() as upstream:
        upstream.script(Reply(tokens=["Hello", " from", " upstream."]))
        server = start_server(env={"LLM_URL": upstream.base_url, "LLM_KEY": secret, "LLM_MODEL": "env-model",
                                   "LLM_SYSTEM_PROMPT": "ENV PROMPT", "PERSONA_NAME": "EnvBot"})
        client = openai.OpenAI(base_url=server.base_url + "/openai/v1", api_key="x", max_retries=0, timeout=30)
        assert [m.id for m in client.models.list()] == ["EnvBot", "all-minilm"]
        reply = client.chat.completions.create(model="EnvBot", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello from upstream."
        request = upstream.requests[-1]
        assert request.body["model"] == "env-model"
        assert request.body["messages"][0] == {"role": "system", "content": "ENV PROMPT"}
        assert request.headers["authorization"] == f"Bearer {secret}"
    assert secret not in server.log()
    assert secret not in httpx.get(server.base_url + "/status", timeout=5).text


def test_persona_path_and_solver_plugin_from_the_environment(start_server, tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    path.write_text(json.dumps({"name": "FromPath", "handlers": ["failure"]}))
    server = start_server(env={"PERSONA_PATH": str(path)})
    assert httpx.get(server.base_url + "/v1/models", timeout=5).json()["data"][0]["id"] == "FromPath"
    plugin = start_server(env={"SOLVER_PLUGIN": "ovos-wordnet-plugin", "PERSONA_NAME": "Dictionary"})
    body = {"model": "Dictionary", "messages": [{"role": "user", "content": "what is a lighthouse"}]}
    reply = httpx.post(plugin.base_url + "/v1/chat/completions", json=body, timeout=30).json()
    assert reply["model"] == "Dictionary" and reply["solver"] == "ovos-wordnet-plugin"
    # Files on the command line win over the environment.
    given = start_server("--persona", str(path), env={"SOLVER_PLUGIN": "ovos-wordnet-plugin"})
    assert httpx.get(given.base_url + "/v1/models", timeout=5).json()["data"][0]["id"] == "FromPath"
