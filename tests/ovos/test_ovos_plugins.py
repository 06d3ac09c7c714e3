"""Installed OpenVoiceOS plugins served by a real server, mixed with built-in solvers, on both APIs.

Real plugins from the package index (the `test` extra): `ovos-solver-yes-no-plugin` (a `neon.plugin.solver`
question solver), `ovos-solver-failure-plugin` (an `opm.agents.chat` engine, shadowed by our built-in of the same
name), `ovos-openai-plugin`'s `ovos-chat-openai-plugin` (an `opm.agents.chat` engine) against the scripted
upstream. Small plugins of each kind and each way of failing come from fake_ovos_plugins.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.conftest import ServerProcess, persona_args, run_cli, start_server_process
from tests.llm.upstream import Reply, Upstream

SECRET = "sk-ovos-secret-4242"
BROKEN = ["test-import-plugin", "test-construct-plugin", "test-raises-plugin", "test-nonstring-plugin",
          "test-hang-plugin"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, ovos_plugin_env: dict[str, str],
           upstream: Upstream) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("ovos-personas")
    mixed = {
        "name": "Mixed",
        "handlers": [
            *BROKEN,
            "ovos-solver-yes-no-plugin",
            "test-question-plugin",
            "test-streaming-plugin",
            "test-chat-solver",
            "test-agent-plugin",
            "test-retrieval-plugin",
            "ovos-solver-wordnet-plugin",
            "ovos:ovos-chat-openai-plugin",
        ],
        # A hung call cannot be interrupted: one at a time, then the plugin is refused while it hangs.
        "test-hang-plugin": {"timeout": 3, "max_calls": 1},
        "test-question-plugin": {"prefix": "Q"},
        "test-streaming-plugin": {"delay": 0.4, "closed_marker": str(root / "closed.txt")},
        "ovos-chat-openai-plugin": {"api_url": upstream.base_url, "key": SECRET, "model": "upstream-model",
                                    "system_prompt": "You are the plugin's prompt.", "timeout": 20},
    }
    ours = {"name": "OurFailure", "handlers": ["ovos-solver-failure-plugin"]}
    theirs = {"name": "TheirFailure", "handlers": ["ovos:ovos-solver-failure-plugin"]}
    args = persona_args(root, {f"{data['name']}.json": data for data in (mixed, ours, theirs)})
    # OpenVoiceOS's user persona directory, under the XDG override: one usable file, one broken.
    user_dir = root / "xdg" / "ovos_persona"
    user_dir.mkdir(parents=True)
    (user_dir / "mine.json").write_text(json.dumps({"name": "User Persona", "description": "from my config",
                                                    "handlers": ["test-retrieval-plugin", "failure"]}))
    (user_dir / "broken.json").write_text("{not json")
    proc = start_server_process(*args, "--ovos-personas", log_path=root / "server.log",
                                env={**ovos_plugin_env, "XDG_CONFIG_HOME": str(root / "xdg")})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def ollama_client(server: ServerProcess) -> ollama.Client:
    return ollama.Client(host=server.base_url, timeout=60)


def ask(client: openai.OpenAI, text: str, model: str = "Mixed", **extra: Any) -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}],
                                          extra_body=extra or None)


def slot_states(server: ServerProcess, persona: str = "Mixed") -> dict[str, dict[str, Any]]:
    status = httpx.get(server.base_url + "/status", timeout=10).json()
    found = next(p for p in status["personas"] if p["name"] == persona)
    return {slot["name"]: slot for slot in found["solvers"]}


def test_a_question_plugin_gets_the_question_lang_and_units(client: openai.OpenAI) -> None:
    reply = ask(client, "ask the question-plugin something", lang="pt-BR", units="imperial")
    assert reply.choices[0].message.content == "Q: ask the question-plugin something [lang=pt-BR units=imperial]"
    assert reply.model_extra["solver"] == "test-question-plugin"


def test_every_kind_of_plugin_failure_is_survived_and_reported(client: openai.OpenAI,
                                                               server: ServerProcess) -> None:
    # The first request went through the broken plugins too (raise, non-text, hang), and was answered.
    assert ask(client, "ask the question-plugin again").model_extra["solver"] == "test-question-plugin"
    slots = slot_states(server)
    assert slots["test-import-plugin"]["state"] == "error"
    assert "fails to import" in slots["test-import-plugin"]["error"]
    assert slots["test-construct-plugin"]["state"] == "error"
    assert "cannot be constructed" in slots["test-construct-plugin"]["error"]
    assert "always raises" in slots["test-raises-plugin"]["last_error"]
    assert "not text" in slots["test-nonstring-plugin"]["last_error"]
    # Hung once (3 s timeout), then refused while its call still hangs: it never eats the worker pool.
    hang = slots["test-hang-plugin"]["last_error"]
    assert "no answer within 3 s" in hang or "have not returned" in hang
    log = server.log()
    for phrase in ("fails to import", "cannot be constructed", "always raises", "not text"):
        assert phrase in log
    assert httpx.get(server.base_url + "/health", timeout=5).status_code == 200


def test_a_hung_plugin_is_refused_quickly_while_it_hangs(client: openai.OpenAI, server: ServerProcess) -> None:
    ask(client, "ask the question-plugin once")
    started = time.monotonic()
    reply = ask(client, "ask the question-plugin twice")
    # Its one allowed call still hangs: the plugin is skipped at once rather than waited on for its 3 s timeout.
    assert time.monotonic() - started < 2.5
    assert reply.model_extra["solver"] == "test-question-plugin"
    assert "have not returned" in slot_states(server)["test-hang-plugin"]["last_error"]


def test_a_real_question_plugin_from_the_package_index(client: openai.OpenAI, ollama_client: ollama.Client) -> None:
    reply = ask(client, "yes please")
    assert reply.choices[0].message.content == "yes"
    assert reply.model_extra["solver"] == "ovos-solver-yes-no-plugin"
    answer = ollama_client.chat(model="Mixed", messages=[{"role": "user", "content": "no thanks"}], stream=False)
    assert answer["message"]["content"] == "no"


def test_a_streaming_plugin_streams_through_the_chain(client: openai.OpenAI) -> None:
    started = time.monotonic()
    arrivals: list[tuple[float, str]] = []
    stream = client.chat.completions.create(
        model="Mixed", stream=True, messages=[{"role": "user", "content": "tell me about streaming-plugin"}])
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic() - started, chunk.choices[0].delta.content))
    text = "".join(piece for _, piece in arrivals)
    assert text.split() == "First sentence. Second sentence. Third sentence.".split()
    # Sentences are 0.4 s apart at the plugin: the first reached the client well before the last was made.
    assert arrivals[-1][0] - arrivals[0][0] > 0.5


def test_a_client_leaving_closes_the_plugin_s_generator(server: ServerProcess) -> None:
    marker = Path(server.log_path).parent / "closed.txt"
    body = {"model": "Mixed", "stream": True,
            "messages": [{"role": "user", "content": "then leave streaming-plugin"}]}
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json=body, timeout=30) as response:
        for line in response.iter_lines():
            if '"content":"First' in line.replace(" ", ""):
                break
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not marker.exists():
        time.sleep(0.05)
    assert marker.read_text().splitlines() == ["then leave streaming-plugin"]


def test_a_chat_solver_gets_the_whole_history_as_role_content_dicts(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="Mixed", messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "what does the chat-solver think"},
    ])
    assert reply.choices[0].message.content == (
        "chat solver saw 4 messages (system,user,assistant,user) of type dict")
    assert reply.model_extra["solver"] == "test-chat-solver"


def test_an_agent_engine_gets_agent_messages_and_streams_on_ollama(ollama_client: ollama.Client) -> None:
    parts = [part["message"]["content"] for part in ollama_client.chat(
        model="Mixed", stream=True, options={"temperature": 0},
        messages=[{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hello agent-plugin"}],
        **{})]
    text = "".join(parts)
    assert "agent saw 2 messages of AgentMessage" in text
    assert "system=['Be kind.']" in text and "units=metric" in text and "lang=en" in text
    assert len([p for p in parts if p]) > 3


def test_a_retrieval_engine_answers_with_its_best_passage(client: openai.OpenAI) -> None:
    reply = ask(client, "search retrieval-plugin for whales")
    assert reply.choices[0].message.content == "the best passage about search retrieval-plugin for whales"
    assert reply.model_extra["solver"] == "test-retrieval-plugin"


def test_built_in_solvers_serve_in_the_same_chain(client: openai.OpenAI) -> None:
    reply = ask(client, "what is a lighthouse")
    assert reply.model_extra["solver"] == "ovos-solver-wordnet-plugin"
    assert "tower" in reply.choices[0].message.content.lower()


def test_the_real_openai_plugin_against_the_scripted_upstream(client: openai.OpenAI, ollama_client: ollama.Client,
                                                             upstream: Upstream, server: ServerProcess) -> None:
    upstream.script(Reply(tokens=["Once", " upon", " a", " time."], delay=0.05),
                    Reply(tokens=["The", " end."]))
    before = len(upstream.requests)
    stream = client.chat.completions.create(model="Mixed", stream=True, messages=[
        {"role": "user", "content": "my name is Ann"}, {"role": "assistant", "content": "Hello Ann"},
        {"role": "user", "content": "tell me a story"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Once upon a time."
    body = upstream.requests[before].body
    assert body["stream"] is True and body["model"] == "upstream-model"
    contents = [(m["role"], m["content"]) for m in body["messages"]]
    assert contents[0] == ("system", "You are the plugin's prompt.")
    assert ("user", "my name is Ann") in contents and contents[-1] == ("user", "tell me a story")
    assert upstream.requests[before].headers["authorization"] == f"Bearer {SECRET}"
    answer = ollama_client.chat(model="Mixed", messages=[{"role": "user", "content": "and then"}], stream=False)
    assert answer["message"]["content"] == "The end."
    assert upstream.requests[-1].body["messages"][-1]["content"] == "and then"
    assert SECRET not in server.log()
    assert SECRET not in httpx.get(server.base_url + "/status", timeout=5).text


def test_a_built_in_serves_its_name_unless_the_persona_asks_for_the_installed_plugin(client: openai.OpenAI) -> None:
    ours = ask(client, "hello", model="OurFailure")
    assert ours.model_extra["solver"] == "ovos-solver-failure-plugin"
    assert "404" not in ours.choices[0].message.content
    theirs = ask(client, "hello", model="TheirFailure", lang="en-US")
    assert theirs.model_extra["solver"] == "ovos:ovos-solver-failure-plugin"
    assert theirs.choices[0].message.content != ours.choices[0].message.content


def test_personas_of_installed_packages_are_served(client: openai.OpenAI, server: ServerProcess) -> None:
    names = [model.id for model in client.models.list()]
    # opm.plugin.persona: ours in the test package, and the one ovos-openai-plugin ships.
    assert "Plugin Shipped Persona" in names and "Remote LLama" in names
    reply = ask(client, "ask the question-plugin", model="Plugin Shipped Persona")
    assert reply.model_extra["solver"] == "test-question-plugin"
    shipped = next(p for p in httpx.get(server.base_url + "/status", timeout=5).json()["personas"]
                   if p["name"] == "Plugin Shipped Persona")
    assert shipped["description"] == "a persona an installed package ships"


def test_personas_of_the_user_ovos_persona_dir_are_served(client: openai.OpenAI, server: ServerProcess) -> None:
    reply = ask(client, "search retrieval-plugin for seals", model="User Persona")
    assert reply.choices[0].message.content == "the best passage about search retrieval-plugin for seals"
    status = httpx.get(server.base_url + "/status", timeout=5).json()
    mine = next(p for p in status["personas"] if p["name"] == "User Persona")
    assert mine["description"] == "from my config" and mine["source"].endswith("xdg/ovos_persona/mine.json")
    assert any(p["file"].endswith("broken.json") and "invalid JSON" in p["problem"] for p in status["problems"])


def test_the_solvers_command_lists_installed_plugins_by_group(ovos_plugin_env: dict[str, str]) -> None:
    result = run_cli("solvers", env=ovos_plugin_env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for group, name in (("neon.plugin.solver", "ovos-solver-yes-no-plugin"), ("opm.agents.chat", "test-agent-plugin"),
                        ("opm.solver.chat", "test-chat-solver"), ("opm.agents.retrieval", "test-retrieval-plugin"),
                        ("opm.solver.question", "test-streaming-plugin")):
        section = out.split(f"installed OpenVoiceOS plugins ({group}):", 1)[1].split("\n\n", 1)[0]
        assert name in section
    assert "write ovos:ovos-solver-failure-plugin" in out


def test_an_unknown_name_says_what_would_provide_it(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"name": "p", "handlers": ["ovos-solver-bm25-squad-plugin", "failure"]}))
    result = run_cli("validate", str(path))
    assert result.returncode == 1
    assert "pip install ovos-solver-bm25-plugin" in result.stdout
    assert 'persona-server[ovos]' in result.stdout
