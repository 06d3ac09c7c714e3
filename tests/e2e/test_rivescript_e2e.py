"""The RiveScript persona from the original project, served by a real server and asked by real clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from persona_server.solvers.failure import dialogs
from tests.conftest import EXAMPLES, ServerProcess, run_cli, start_server_process

RIVE = "ovos-solver-rivescript-plugin"
PERSONA_FILE = EXAMPLES / "rivescript_bot.json"
JOKES_FILE = Path(__file__).resolve().parents[2] / "src/persona_server/data/rivescript/en/jokes.rive"


def joke_book() -> set[str]:
    """The replies of the shipped brain's "+ joke book" trigger."""
    jokes: set[str] = set()
    in_book = False
    for line in JOKES_FILE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("+"):
            in_book = line == "+ joke book"
        elif in_book and line.startswith("- "):
            jokes.add(line[2:])
    return jokes


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("rivescript")
    proc = start_server_process("--persona", str(PERSONA_FILE), log_path=root / "server.log")
    yield proc
    proc.stop()


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)


def chat(client: openai.OpenAI, messages: list[dict[str, str]], **kwargs: str) -> tuple[str, str | None]:
    completion = client.chat.completions.create(model="rivescript_bot", messages=messages,  # type: ignore[arg-type]
                                                **kwargs)  # type: ignore[call-overload]
    extra = completion.model_extra or {}
    return completion.choices[0].message.content or "", extra.get("solver")


def test_tells_a_joke(client: openai.OpenAI) -> None:
    jokes = joke_book()
    assert len(jokes) >= 20
    text, solver = chat(client, [{"role": "user", "content": "tell me a joke"}])
    assert solver == RIVE
    assert text in jokes


def test_jokes_do_not_repeat_for_one_user(client: openai.OpenAI) -> None:
    told = [chat(client, [{"role": "user", "content": "tell me another joke"}], user="joke-fan")[0]
            for _ in range(8)]
    assert len(set(told)) == 8 and set(told) <= joke_book()


def test_name_remembered_across_turns_of_one_conversation(client: openai.OpenAI) -> None:
    history = [{"role": "user", "content": "Hello! My name is Ana."}]
    reply, solver = chat(client, history)
    assert solver == RIVE and "Ana" in reply
    history += [{"role": "assistant", "content": reply}, {"role": "user", "content": "I like jazz."}]
    reply, _ = chat(client, history)
    history += [{"role": "assistant", "content": reply}, {"role": "user", "content": "What is my name?"}]
    reply, solver = chat(client, history)
    assert solver == RIVE and "Ana" in reply
    history += [{"role": "assistant", "content": reply}, {"role": "user", "content": "What do I like?"}]
    assert "jazz" in chat(client, history)[0]
    # Another conversation (a different opening message) has not been told anything.
    other, _ = chat(client, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"},
                             {"role": "user", "content": "What is my name?"}])
    assert "Ana" not in other


def test_name_remembered_per_user_field(client: openai.OpenAI) -> None:
    chat(client, [{"role": "user", "content": "call me Bruno"}], user="u-bruno")
    reply, _ = chat(client, [{"role": "user", "content": "what's my name?"}], user="u-bruno")
    assert "Bruno" in reply
    reply, _ = chat(client, [{"role": "user", "content": "what's my name?"}], user="u-someone-else")
    assert "Bruno" not in reply


def test_streams_a_poem(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="rivescript_bot", messages=[{"role": "user", "content": "write a poem about the sea"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert "the sea" in text.lower() and text.count("\n") >= 3


def test_knock_knock_over_http(client: openai.OpenAI) -> None:
    turns = ["knock knock", "Interrupting cow", "interrupting cow wh-"]
    history: list[dict[str, str]] = []
    replies = []
    for turn in turns:
        history.append({"role": "user", "content": turn})
        reply, solver = chat(client, history)
        assert solver == RIVE
        replies.append(reply)
        history.append({"role": "assistant", "content": reply})
    assert "who" in replies[0].lower()
    assert replies[1].lower() == "interrupting cow who?"


def test_factual_question_gets_no_rivescript_answer(client: openai.OpenAI) -> None:
    # The persona has no other solver, so nothing answers; RiveScript must not pretend to know: the chain
    # apologises instead.
    text, solver = chat(client, [{"role": "user", "content": "What is the capital of France?"}])
    assert solver is None and text in dialogs("en")


def test_cli_ask_prints_a_joke() -> None:
    result = run_cli("ask", "tell me a joke", "--persona", str(PERSONA_FILE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in joke_book()


def test_cli_ask_json_names_the_solver() -> None:
    result = run_cli("ask", "write a poem about a tree", "--persona", str(PERSONA_FILE), "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["solver"] == RIVE
    assert "a tree" in answer["answer"] and answer["answer"].count("\n") >= 3


def test_cli_ask_factual_question_is_not_answered() -> None:
    result = run_cli("ask", "who was the first person on the moon?", "--persona", str(PERSONA_FILE), "--json")
    answer = json.loads(result.stdout)
    assert answer["solver"] is None and answer["answer"] in dialogs("en")
