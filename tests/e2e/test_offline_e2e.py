"""The offline brains through a real server process, the real `openai` client and the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from persona_server.solvers.failure import dialogs
from tests.conftest import ServerProcess, run_cli, start_server_process

WORDNET = "ovos-solver-wordnet-plugin"
AIML = "ovos-solver-aiml-plugin"
FAILURE = "ovos-solver-failure-plugin"
LIGHTHOUSE = "A lighthouse is a tower with a light that gives warning of shoals to passing ships."


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A private cache shared by every process of this module: WordNet is prepared once, never in $HOME."""
    return {"PERSONA_SERVER_CACHE": str(tmp_path_factory.mktemp("cache"))}


@pytest.fixture(scope="module")
def personas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("personas")
    dictionary = root / "dictionary.json"
    dictionary.write_text(json.dumps({"name": "Dictionary", "solvers": [WORDNET, FAILURE]}), encoding="utf-8")
    alice = root / "alice.json"
    alice.write_text(
        json.dumps({"name": "OldSchool", "solvers": [AIML, FAILURE], AIML: {"name": "Robby", "master": "Ann"}}),
        encoding="utf-8",
    )
    return {"dictionary": dictionary, "alice": alice}


@pytest.fixture(scope="module")
def server(personas: dict[str, Path], cache_env: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # /health answers 200 only once every solver has loaded, so this also waits for WordNet and ALICE.
    proc = start_server_process(
        "--persona", str(personas["dictionary"]), "--persona", str(personas["alice"]),
        log_path=tmp_path_factory.mktemp("logs") / "server.log", env=cache_env,
    )
    yield proc
    proc.stop()


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)


def ask(client: openai.OpenAI, model: str, question: str) -> tuple[str, str]:
    completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}])
    assert completion.model_extra is not None
    return completion.choices[0].message.content or "", completion.model_extra["solver"]


def test_wordnet_defines(client: openai.OpenAI) -> None:
    assert ask(client, "Dictionary", "what is a lighthouse") == (LIGHTHOUSE, WORDNET)
    assert ask(client, "Dictionary", "What are lighthouses?") == (LIGHTHOUSE, WORDNET)
    text, solver = ask(client, "Dictionary", "opposite of hot")
    assert (text, solver) == ("The opposite of hot is cold.", WORDNET)


def test_wordnet_streams(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="Dictionary", messages=[{"role": "user", "content": "what is a lighthouse"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == LIGHTHOUSE


def test_chit_chat_falls_through_to_failure(client: openai.OpenAI) -> None:
    for question in ("hello", "what is your name", "who is Albert Einstein"):
        text, solver = ask(client, "Dictionary", question)
        assert solver == FAILURE
        assert text in set(dialogs("en"))


def test_aiml_persona_chats(client: openai.OpenAI) -> None:
    text, solver = ask(client, "OldSchool", "hello")
    assert solver == AIML and text.strip()
    text, solver = ask(client, "OldSchool", "what is your name")
    assert solver == AIML and "Robby" in text
    text, solver = ask(client, "OldSchool", "who created you")
    assert solver == AIML and "Ann" in text


def test_cli_ask_defines(personas: dict[str, Path], cache_env: dict[str, str], server: ServerProcess) -> None:
    # `server` first, so the WordNet copy in the shared cache already exists (the CLI must reuse it).
    result = run_cli("ask", "define ice cream", "--persona", str(personas["dictionary"]), env=cache_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Ice cream means frozen dessert containing cream and sugar and flavoring."
