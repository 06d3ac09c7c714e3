"""Today's OpenVoiceOS persona format through a real server: `handlers`, the current plugin names,
`system_prompt` + `system_prompt_strategy` (the same on the OpenAI, Ollama and Responses routes), `memory_module`,
`description`; `validate` on nested solver names.

The system prompt is observed on the far side: the scripted upstream records the messages the LLM solver sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.conftest import ServerProcess, persona_args, run_cli, start_server_process
from tests.llm.upstream import Upstream

OFFLINE = "http://127.0.0.1:1"
NEW_NAMES_OLD_SCHOOL = {
    "name": "OldSchoolBot",
    "description": "Classic look-ups, a dictionary and chit-chat",
    "handlers": ["ovos-wikipedia-plugin", "ovos-ddg-plugin", "ovos-wolfram-alpha-plugin", "ovos-wordnet-plugin",
                 "ovos-solver-rivescript-plugin", "ovos-solver-failure-plugin"],
    "memory_module": "ovos-agents-short-term-memory-plugin",
    "ovos-agents-short-term-memory-plugin": {"max_history": 7},
    "ovos-wikipedia-plugin": {"base_url": OFFLINE + "/{lang}"},
    "ovos-ddg-plugin": {"base_url": OFFLINE},
    "ovos-wolfram-alpha-plugin": {"appid": "not-a-real-appid", "base_url": OFFLINE},
}


def llm_persona(name: str, upstream: Upstream, **keys: object) -> dict[str, object]:
    return {"name": name, "handlers": ["ovos-chat-openai-plugin"], **keys,
            "ovos-chat-openai-plugin": {"api_url": upstream.base_url, "model": f"model-{name}"}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("format-personas")
    personas = [
        NEW_NAMES_OLD_SCHOOL,
        llm_persona("Append", upstream, system_prompt="PERSONA PROMPT", system_prompt_strategy="append"),
        llm_persona("Replace", upstream, system_prompt="PERSONA PROMPT", system_prompt_strategy="replace"),
        llm_persona("Ignore", upstream, system_prompt="PERSONA PROMPT", system_prompt_strategy="ignore"),
        # No strategy: the environment's PERSONA_SYSTEM_PROMPT_STRATEGY applies.
        llm_persona("FromEnv", upstream, system_prompt="PERSONA PROMPT"),
        {"name": "NoMemory", "handlers": ["failure"], "memory": 5, "memory_module": None},
        {"name": "OtherMemory", "handlers": ["failure"], "memory_module": "no-such-memory-plugin"},
    ]
    args = persona_args(root, {f"{data['name']}.json": data for data in personas})
    proc = start_server_process(*args, log_path=root / "server.log",
                                env={"PERSONA_SYSTEM_PROMPT_STRATEGY": "ignore"})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def ollama_client(server: ServerProcess) -> ollama.Client:
    return ollama.Client(host=server.base_url, timeout=30)


def system_sent(upstream: Upstream, persona: str) -> str | None:
    """The system message the last request of a persona's LLM solver carried, None for none."""
    body = next(r.body for r in reversed(upstream.requests) if r.body.get("model") == f"model-{persona}")
    system = [m["content"] for m in body["messages"] if m["role"] == "system"]
    assert len(system) <= 1
    return system[0] if system else None


def ask_every_route(client: openai.OpenAI, ollama_client: ollama.Client, persona: str,
                    client_system: str | None) -> Iterator[str]:
    """The same question on the OpenAI chat, Ollama chat and Responses routes (each checked by the caller)."""
    system = [{"role": "system", "content": client_system}] if client_system else []
    question = [{"role": "user", "content": "hello there"}]
    yield client.chat.completions.create(model=persona, messages=[*system, *question]).choices[0].message.content
    yield ollama_client.chat(model=persona, messages=[*system, *question], stream=False)["message"]["content"]
    yield client.responses.create(model=persona, input="hello there",
                                  **({"instructions": client_system} if client_system else {})).output_text


EXPECTED = {
    # persona -> (what the upstream gets with a client system message, ... without one)
    "Append": ("PERSONA PROMPT\n\nCLIENT PROMPT", "PERSONA PROMPT"),
    "Replace": ("CLIENT PROMPT", "PERSONA PROMPT"),
    "Ignore": ("PERSONA PROMPT", "PERSONA PROMPT"),
    "FromEnv": ("PERSONA PROMPT", "PERSONA PROMPT"),  # the environment says "ignore"
}


@pytest.mark.parametrize("persona", list(EXPECTED))
def test_system_prompt_strategy_is_the_same_on_every_route(persona: str, client: openai.OpenAI,
                                                           ollama_client: ollama.Client, upstream: Upstream) -> None:
    with_client, without = EXPECTED[persona]
    for client_system, expected in (("CLIENT PROMPT", with_client), (None, without)):
        for route, answer in zip(("openai", "ollama", "responses"),
                                 ask_every_route(client, ollama_client, persona, client_system), strict=True):
            assert answer == "I am the default upstream.", route
            assert system_sent(upstream, persona) == expected, (route, client_system)


@pytest.mark.parametrize("route", ["openai", "ollama", "responses"])
def test_old_school_bot_with_the_new_names_answers(route: str, client: openai.OpenAI,
                                                   ollama_client: ollama.Client) -> None:
    question = "what is a lighthouse"
    if route == "openai":
        reply = client.chat.completions.create(model="OldSchoolBot", messages=[{"role": "user", "content": question}])
        text, solver = reply.choices[0].message.content, reply.model_extra["solver"]
        assert solver == "ovos-wordnet-plugin"
    elif route == "ollama":
        text = "".join(part["message"]["content"] for part in ollama_client.chat(
            model="OldSchoolBot", messages=[{"role": "user", "content": question}], stream=True))
    else:
        text = client.responses.create(model="OldSchoolBot", input=question).output_text
    assert "tower" in text.lower()
    joke = client.chat.completions.create(model="OldSchoolBot",
                                          messages=[{"role": "user", "content": "tell me a joke"}])
    assert joke.model_extra["solver"] == "ovos-solver-rivescript-plugin"


def test_description_and_memory_module_are_shown(server: ServerProcess, ollama_client: ollama.Client) -> None:
    shown = ollama_client.show("OldSchoolBot")
    assert shown.modelinfo["persona.description"] == "Classic look-ups, a dictionary and chit-chat"
    # The short-term memory plugin's max_history became our memory; memory_module null turned it off.
    assert shown.modelinfo["persona.memory"] == 7
    assert ollama_client.show("NoMemory").modelinfo["persona.memory"] == 0
    status = httpx.get(server.base_url + "/status", timeout=5).json()
    old = next(p for p in status["personas"] if p["name"] == "OldSchoolBot")
    assert old["description"] == "Classic look-ups, a dictionary and chit-chat"
    other = next(p for p in status["personas"] if p["name"] == "OtherMemory")
    assert other["memory_module"]["name"] == "no-such-memory-plugin"
    assert other["memory_module"]["state"] == "error"
    assert "no installed memory plugin" in other["memory_module"]["error"]
    assert ollama_client.show("OtherMemory").modelinfo["persona.memory"] == 0


def test_validate_accepts_both_spellings_and_shows_the_description(tmp_path: Path) -> None:
    new = tmp_path / "new.json"
    new.write_text(json.dumps(NEW_NAMES_OLD_SCHOOL))
    result = run_cli("validate", str(new), "examples/personas/OldSchoolBot.json")
    assert result.returncode == 0, result.stdout
    assert "ok (OldSchoolBot: 6 solvers) - Classic look-ups, a dictionary and chit-chat" in result.stdout


def test_validate_checks_nested_solver_names(tmp_path: Path) -> None:
    path = tmp_path / "nested.json"
    path.write_text(json.dumps({
        "name": "Nested",
        "handlers": ["ovos-chat-openai-plugin", "mixture"],
        "ovos-chat-openai-plugin": {"api_url": OFFLINE, "context_solvers": ["ovos-wikipedia-plugin", "no-such-helper"]},
        "mixture": {"workers": ["wordnet", {"solver": "no-such-worker"}], "strategy": "llm",
                    "judge": "no-such-judge"},
    }))
    result = run_cli("validate", str(path))
    assert result.returncode == 1
    out = result.stdout
    assert "context_solvers: 'no-such-helper'" in out
    assert "workers: 'no-such-worker'" in out
    assert "judge: 'no-such-judge'" in out
    assert "ovos-wikipedia-plugin" not in out


def test_handlers_and_solvers_must_agree(tmp_path: Path) -> None:
    path = tmp_path / "both.json"
    path.write_text(json.dumps({"name": "Both", "handlers": ["failure"], "solvers": ["wordnet"]}))
    result = run_cli("validate", str(path))
    assert result.returncode == 1
    assert "'handlers' and 'solvers' name different chains" in result.stdout
