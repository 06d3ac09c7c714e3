"""Conversation state belongs to a conversation: keyed only by the client's `user`, never by what was said.

Real server processes, the `openai` and `ollama` clients, the shipped RiveScript persona (chit-chat that remembers
names and likes) under two persona names.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ollama
import openai
import orjson
import pytest

from tests.conftest import EXAMPLES, ServerProcess, start_server_process

RIVE = "ovos-solver-rivescript-plugin"


def _start(root: Path, log_name: str) -> ServerProcess:
    # The original project's rivescript_bot.json, and the same brain under a second persona name.
    other = root / "other_bot.json"
    other.write_bytes(orjson.dumps({"name": "OtherBot", "solvers": [RIVE]}))
    return start_server_process("--persona", str(EXAMPLES / "rivescript_bot.json"), "--persona", str(other),
                                log_path=root / log_name)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("conversations")
    proc = _start(root, "server.log")
    yield proc
    proc.stop()


def oai(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)


def say(server: ServerProcess, messages: list[dict[str, str]], model: str = "rivescript_bot", **extra: str) -> str:
    reply = oai(server).chat.completions.create(model=model, messages=messages,  # type: ignore[arg-type]
                                                extra_body=extra or None)
    assert (reply.model_extra or {}).get("solver") == RIVE
    return reply.choices[0].message.content or ""


def turns(*texts: str) -> list[dict[str, str]]:
    """A history: user and assistant turns alternating, starting with the user."""
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)]


def test_two_strangers_with_the_same_opening_share_nothing(server: ServerProcess) -> None:
    # Stranger A, over the OpenAI API, opens with "hello" and tells a name and a like; no `user` field, as
    # LangChain, litellm and the `llm` CLI send it.
    first = say(server, turns("hello"))
    told = say(server, turns("hello", first, "my name is Priya and I like jazz"))
    assert "Priya" in told
    assert "Priya" in say(server, turns("hello", first, "my name is Priya and I like jazz", told, "what is my name"))

    # Stranger B opens with the same words, on the OpenAI route ...
    b_first = say(server, turns("hello"))
    assert "Priya" not in b_first
    assert "Priya" not in say(server, turns("hello", b_first, "what is my name"))
    assert "jazz" not in say(server, turns("hello", b_first, "what do I like?"))

    # ... and on the Ollama route, with the official client.
    client = ollama.Client(host=server.base_url)
    hello = client.chat(model="rivescript_bot", messages=turns("hello"), stream=False).message.content or ""
    assert "Priya" not in hello
    for question, secret in (("what is my name", "Priya"), ("what do I like?", "jazz")):
        answer = client.chat(model="rivescript_bot", messages=turns("hello", hello, question), stream=False)
        assert secret not in (answer.message.content or "")
    streamed = "".join(part.message.content or "" for part in client.chat(
        model="rivescript_bot", messages=turns("hello", hello, "what is my name"), stream=True))
    assert streamed and "Priya" not in streamed


def test_the_history_a_client_resends_is_the_conversation(server: ServerProcess) -> None:
    history = turns("my name is Ann", "Nice to meet you, Ann!", "I like tea", "Noted.")
    assert "Ann" in say(server, [*history, {"role": "user", "content": "what is my name"}])
    assert "tea" in say(server, [*history, {"role": "user", "content": "what do I like?"}])
    # The same history on the Ollama route.
    client = ollama.Client(host=server.base_url)
    answer = client.chat(model="rivescript_bot", messages=[*history, {"role": "user", "content": "who am i"}])
    assert "Ann" in (answer.message.content or "")


def test_resent_history_restores_the_name_on_a_freshly_started_server(tmp_path: Path) -> None:
    history = turns("hi, my name is Zoe", "Hello, Zoe! Nice to meet you.", "i like chess", "Good to know.")
    first = _start(tmp_path, "first.log")
    try:
        say(first, turns("hi, my name is Zoe"), user="zoe-1")
    finally:
        first.stop()
    # A new process (a restart, another worker) has never seen Zoe: the history alone tells it.
    fresh = _start(tmp_path, "fresh.log")
    try:
        assert "Zoe" in say(fresh, [*history, {"role": "user", "content": "what is my name"}])
        assert "Zoe" in say(fresh, [*history, {"role": "user", "content": "what is my name"}], user="zoe-1")
        assert "chess" in say(fresh, [*history, {"role": "user", "content": "what do I like?"}], user="zoe-1")
    finally:
        fresh.stop()


def test_a_user_is_remembered_and_never_crosses_users_or_personas(server: ServerProcess) -> None:
    assert "Mira" in say(server, turns("my name is Mira"), user="mira-7")
    say(server, turns("I like sailing"), user="mira-7")
    # Later single-message requests of the same user: remembered.
    assert "Mira" in say(server, turns("what is my name"), user="mira-7")
    assert "sailing" in say(server, turns("what do I like?"), user="mira-7")
    # On the Ollama route too (`user` is our extension there).
    response = ollama.Client(host=server.base_url)._client.post(
        "/api/chat", json={"model": "rivescript_bot", "stream": False, "user": "mira-7",
                           "messages": turns("what is my name")})
    assert "Mira" in response.json()["message"]["content"]
    # Another user, an anonymous request, and the same user on another persona know nothing of it.
    assert "Mira" not in say(server, turns("what is my name"), user="someone-else")
    assert "Mira" not in say(server, turns("what is my name"))
    assert "Mira" not in say(server, turns("what is my name"), model="OtherBot", user="mira-7")
    assert "sailing" not in say(server, turns("what do I like?"), model="OtherBot", user="mira-7")


def test_a_renamed_user_is_greeted_by_the_new_name(server: ServerProcess) -> None:
    assert "Bob" in say(server, turns("my name is Bob"), user="renamed")
    renamed = say(server, turns("my name is Ann"), user="renamed")
    assert renamed.endswith("Nice to meet you, Ann!"), renamed
    assert "Your name is Ann" in say(server, turns("what is my name"), user="renamed")
    # Likes follow the latest word too.
    say(server, turns("I like rain"), user="renamed")
    say(server, turns("I hate rain"), user="renamed")
    assert "rain" not in say(server, turns("what do I like?"), user="renamed")
    assert "rain" in say(server, turns("what do I dislike?"), user="renamed")
    # The same, told in one resent history without `user`.
    history = turns("my name is Bob", "Hello, Bob!", "my name is Ann")
    assert say(server, history).endswith("Nice to meet you, Ann!")
