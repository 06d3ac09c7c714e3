"""Per-conversation memory: settings, bounds, the recall rule, and a persona that uses it."""

from __future__ import annotations

import httpx
import pytest

from persona_server.memory import (
    ConversationMemory,
    MemorySettings,
    history_pairs,
    parse_memory_setting,
)
from persona_server.persona import Persona, PersonaError, parse_persona
from persona_server.query import Message, Query
from persona_server.solvers import registry
from persona_server.solvers.base import Solver


class RecallSolver(Solver):
    """A question solver that says what it remembers of the conversation."""

    name = "memtest-recall"

    async def answer(self, query: Query) -> str:
        before = "; ".join(f"{q}->{a}" for q, a in query.memory) or "nothing"
        return f"{query.question} [before: {before}] ({len(query.messages)} messages)"


class TranscriptSolver(Solver):
    """A chat solver that answers with the transcript it was given."""

    name = "memtest-transcript"
    chat = True

    async def answer(self, query: Query) -> str:
        return " | ".join(f"{m.role}={m.content}" for m in query.messages)


registry.register(RecallSolver)
registry.register(TranscriptSolver)


async def make_persona(solver: str, memory: object = 2, name: str = "mem") -> Persona:
    spec = parse_persona({"name": name, "solvers": [solver], "memory": memory}, source="t.json", default_name=name)
    persona = Persona(spec, http=lambda: httpx.AsyncClient())
    await persona.start()
    await persona.wait_ready()
    return persona


async def ask(persona: Persona, text: str, user: str | None = None, history: list[Message] | None = None) -> str:
    query = Query(messages=[*(history or []), Message("user", text)], user=user)
    return (await persona.answer(query)).text


# -- settings -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (0, None),
        (False, None),
        (5, MemorySettings(turns=5)),
        ({"turns": 3, "ttl": 60, "conversations": 10}, MemorySettings(turns=3, ttl=60.0, conversations=10)),
        ({"ttl": 1.5}, MemorySettings(turns=5, ttl=1.5)),
    ],
)
def test_memory_settings(value: object, expected: MemorySettings | None) -> None:
    assert parse_memory_setting(value) == expected


@pytest.mark.parametrize("value", [-1, True, "5", 2.5, {"turns": -1}, {"ttl": 0}, {"conversations": 0},
                                   {"turn": 3}, [5]])
def test_bad_memory_settings_are_persona_errors(value: object) -> None:
    with pytest.raises(PersonaError, match="memory"):
        parse_persona({"solvers": ["failure"], "memory": value}, source="bad.json", default_name="bad")


def test_memory_is_a_persona_setting_not_a_solver_block() -> None:
    spec = parse_persona({"solvers": ["failure"], "memory": 4}, source="x.json", default_name="x")
    assert spec.memory == MemorySettings(turns=4)
    assert "memory" not in spec.blocks


# -- the store ------------------------------------------------------------------------------------------------


def test_keeps_only_the_last_turns() -> None:
    memory = ConversationMemory(MemorySettings(turns=2))
    for n in range(4):
        memory.remember("c", f"q{n}", f"a{n}")
    assert memory.recall("c") == [("q2", "a2"), ("q3", "a3")]
    assert memory.recall("other") == []


def test_least_recently_used_conversations_are_dropped() -> None:
    memory = ConversationMemory(MemorySettings(turns=2, conversations=2))
    memory.remember("a", "q", "a")
    memory.remember("b", "q", "b")
    memory.recall("a")  # "a" is now the most recently used
    memory.remember("c", "q", "c")
    assert len(memory) == 2
    assert memory.recall("b") == []
    assert memory.recall("a") == [("q", "a")]
    assert memory.recall("c") == [("q", "c")]


def test_idle_conversations_expire() -> None:
    now = [1000.0]
    memory = ConversationMemory(MemorySettings(turns=2, ttl=60), clock=lambda: now[0])
    memory.remember("old", "q", "a")
    now[0] += 30
    memory.remember("young", "q", "a")
    now[0] += 31  # "old" idle 61 s, "young" 31 s
    assert memory.recall("old") == []
    assert memory.recall("young") == [("q", "a")]
    assert len(memory) == 1


def test_a_conversation_is_bounded_in_bytes_oldest_pairs_first() -> None:
    memory = ConversationMemory(MemorySettings(turns=100, max_bytes=1000))
    for n in range(5):
        memory.remember("c", f"q{n}" + "x" * 200, f"a{n}" + "y" * 200)  # ~400 bytes a pair
    pairs = memory.recall("c")
    assert [q[:2] for q, _ in pairs] == ["q3", "q4"]
    assert memory.size == sum(len(q) + len(a) for q, a in pairs) <= 1000


def test_a_pair_larger_than_the_allowance_is_truncated() -> None:
    memory = ConversationMemory(MemorySettings(turns=5, max_bytes=1000))
    memory.remember("c", "é" * 1_000_000, "answer " * 1000)  # 2 MB of question: UTF-8 bytes count
    [(question, answer)] = memory.recall("c")
    assert question == "é" * 250 and len(question.encode()) == 500
    assert len(answer.encode()) == 500 and answer.startswith("answer answer")


def test_all_conversations_together_are_bounded_in_bytes() -> None:
    memory = ConversationMemory(MemorySettings(turns=5, max_bytes=1000, total_bytes=3000))
    for n in range(10):
        memory.remember(f"user{n}", "q" * 500, "a" * 400)
    assert memory.size <= 3000
    assert len(memory) == 3
    assert memory.recall("user9") and not memory.recall("user6")
    memory.recall("user7")
    memory.remember("new", "q" * 500, "a" * 400)
    assert memory.recall("user7") and not memory.recall("user8")  # least recently used went


def test_adopted_conversations_keep_the_new_bounds() -> None:
    old = ConversationMemory(MemorySettings(turns=10, max_bytes=10_000))
    for n in range(10):
        old.remember("c", "q" * 500, f"a{n}")
    new = ConversationMemory(MemorySettings(turns=10, max_bytes=1100))
    new.adopt(old)
    assert [a for _, a in new.recall("c")] == ["a8", "a9"]
    assert new.size == 1004


@pytest.mark.parametrize("value", [{"max_bytes": 10}, {"max_bytes": "big"}, {"max_bytes": 1000, "total_bytes": 999}])
def test_bad_byte_bounds_are_refused(value: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="bytes"):
        parse_memory_setting(value)


def test_history_pairs() -> None:
    messages = [
        Message("system", "s"), Message("assistant", "greeting"), Message("user", "q1"), Message("assistant", "a1"),
        Message("user", "q2"), Message("user", "q3"), Message("assistant", "a3"), Message("user", "q4"),
    ]
    assert history_pairs(messages) == [("q1", "a1"), ("q3", "a3")]


def test_anonymous_queries_have_no_memory_key() -> None:
    query = Query.from_text("hello")
    query.persona = "p"
    assert ConversationMemory.key(query) is None
    query.user = "ann"
    assert ConversationMemory.key(query) is not None


# -- a persona with memory -----------------------------------------------------------------------------------


async def test_question_solvers_see_what_came_before_in_the_same_conversation() -> None:
    persona = await make_persona("memtest-recall", memory=2)
    assert await ask(persona, "one", user="ann") == "one [before: nothing] (1 messages)"
    assert await ask(persona, "two", user="ann") == "two [before: one->one [before: nothing] (1 messages)] (1 messages)"
    third = await ask(persona, "three", user="ann")
    assert third.startswith("three [before: one->") and "; two->" in third
    fourth = await ask(persona, "four", user="ann")
    assert fourth.startswith("four [before: two->"), "only the last 2 pairs are kept"


async def test_memory_never_crosses_users_personas_or_anonymous_requests() -> None:
    first = await make_persona("memtest-recall", name="first")
    second = await make_persona("memtest-recall", name="second")
    await ask(first, "secret of ann", user="ann")
    assert "nothing" in await ask(first, "hi", user="bob")
    assert "nothing" in await ask(second, "hi", user="ann")
    # Anonymous requests are neither remembered nor recalled, even with the same opening line.
    await ask(first, "hello")
    assert await ask(first, "hello") == "hello [before: nothing] (1 messages)"
    assert "secret of ann" in await ask(first, "again", user="ann")


async def test_a_client_history_wins_over_the_server_memory() -> None:
    persona = await make_persona("memtest-recall", memory=5)
    await ask(persona, "remembered", user="ann")
    history = [Message("user", "q1"), Message("assistant", "a1")]
    assert await ask(persona, "q2", user="ann", history=history) == "q2 [before: q1->a1] (1 messages)"


async def test_chat_solvers_get_the_remembered_pairs_as_history() -> None:
    persona = await make_persona("memtest-transcript", memory=3)
    await ask(persona, "my name is Ann", user="ann")
    query = Query(messages=[Message("system", "be brief"), Message("user", "what is my name?")], user="ann")
    answer = await persona.answer(query)
    assert answer.text == (
        "system=be brief | user=my name is Ann | assistant=user=my name is Ann | user=what is my name?"
    )
    # Another user starts from scratch.
    assert await ask(persona, "who am I?", user="bob") == "user=who am I?"


async def test_an_answer_closed_early_is_not_remembered() -> None:
    persona = await make_persona("memtest-recall")
    stream = persona.stream(Query(messages=[Message("user", "cut short")], user="ann"))
    async for _ in stream:
        break
    await stream.aclose()
    assert "nothing" in await ask(persona, "next", user="ann")


async def test_persona_without_memory_leaves_the_query_alone() -> None:
    persona = await make_persona("memtest-recall", memory=0)
    assert persona.memory is None
    await ask(persona, "one", user="ann")
    assert await ask(persona, "two", user="ann") == "two [before: nothing] (1 messages)"
