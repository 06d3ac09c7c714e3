"""Installed OpenVoiceOS memory plugins (`memory_module`), run for a persona by a real server.

`ovos-memory-plugin-recency` is the real one (from `ovos-memory-plugins`); the others are in fake_ovos_plugins.py.
What the plugin recalled is seen by the solvers: the test plugins report the messages they were given.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ServerProcess, persona_args, run_cli, start_server_process


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, ovos_plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("memory-personas")
    personas = [
        {"name": "Remembering", "handlers": ["test-agent-plugin"], "memory_module": "test-memory-plugin",
         "test-memory-plugin": {"system_prompt": "MEMORY PROMPT"}},
        {"name": "Recency", "handlers": ["test-chat-solver"], "memory_module": "ovos-memory-plugin-recency",
         "ovos-memory-plugin-recency": {"max_history": 10, "system_prompt": "RECENCY PROMPT"}},
        {"name": "BrokenMemory", "handlers": ["test-question-plugin"], "memory_module": "test-broken-memory"},
        {"name": "MissingMemory", "handlers": ["test-question-plugin"], "memory_module": "no-such-memory"},
    ]
    args = persona_args(root, {f"{data['name']}.json": data for data in personas})
    proc = start_server_process(*args, log_path=root / "server.log", env=ovos_plugin_env)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0, timeout=30)


def say(client: openai.OpenAI, model: str, text: str, user: str | None = None, stream: bool = False) -> str:
    extra: dict[str, Any] = {"user": user} if user else {}
    messages = [{"role": "user", "content": text}]
    if stream:
        chunks = client.chat.completions.create(model=model, messages=messages, stream=True, **extra)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return client.chat.completions.create(model=model, messages=messages, **extra).choices[0].message.content


def memory_status(server: ServerProcess, persona: str) -> dict[str, Any]:
    status = httpx.get(server.base_url + "/status", timeout=5).json()
    return next(p for p in status["personas"] if p["name"] == persona)["memory_module"]


def test_a_memory_plugin_recalls_each_user_s_conversation(client: openai.OpenAI, server: ServerProcess) -> None:
    first = say(client, "Remembering", "hello agent-plugin", user="ann")
    assert "agent saw 2 messages" in first and "system=['MEMORY PROMPT']" in first
    time.sleep(0.5)  # the exchange is recorded (update_history, in the worker pool) after the answer
    second = say(client, "Remembering", "again agent-plugin", user="ann", stream=True)
    assert "agent saw 4 messages" in second
    # Another user has a session of their own; an anonymous request none at all.
    assert "agent saw 2 messages" in say(client, "Remembering", "hi agent-plugin", user="bob")
    anonymous = say(client, "Remembering", "hi agent-plugin")
    assert "agent saw 1 messages" in anonymous and "system=[]" in anonymous
    assert memory_status(server, "Remembering") == {"name": "test-memory-plugin", "state": "ready"}


def test_the_real_recency_memory_plugin(client: openai.OpenAI) -> None:
    assert say(client, "Recency", "what does the chat-solver think", user="carol") == (
        "chat solver saw 2 messages (system,user) of type dict")
    time.sleep(0.5)
    assert say(client, "Recency", "and the chat-solver now", user="carol") == (
        "chat solver saw 4 messages (system,user,assistant,user) of type dict")


def test_a_failing_or_missing_memory_plugin_costs_only_the_memory(client: openai.OpenAI,
                                                                    server: ServerProcess) -> None:
    assert say(client, "BrokenMemory", "ask the question-plugin", user="dan").startswith("question: ask")
    assert "the memory store is down" in memory_status(server, "BrokenMemory")["last_error"]
    assert say(client, "MissingMemory", "ask the question-plugin", user="dan").startswith("question: ask")
    missing = memory_status(server, "MissingMemory")
    assert missing["state"] == "error" and "no installed memory plugin" in missing["error"]
    assert "the memory store is down" in server.log()


def test_validate_names_a_missing_memory_plugin(tmp_path, ovos_plugin_env: dict[str, str]) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"name": "m", "handlers": ["failure"], "memory_module": "no-such-memory"}))
    result = run_cli("validate", str(path), env=ovos_plugin_env)
    assert result.returncode == 1 and "memory_module 'no-such-memory'" in result.stdout
    path.write_text(json.dumps({"name": "m", "handlers": ["failure"], "memory_module": "test-memory-plugin"}))
    assert run_cli("validate", str(path), env=ovos_plugin_env).returncode == 0
