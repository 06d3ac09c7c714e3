"""The AIML solver (python-aiml + the ALICE set from the installed package), driven through a real Persona."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from persona_server.persona import Persona, parse_persona
from persona_server.query import Answer, Message, Query
from persona_server.solvers.aiml import AIMLSolver, tidy

SOLVER = "ovos-solver-aiml-plugin"

CUSTOM_AIML = """<?xml version="1.0" encoding="UTF-8"?>
<aiml version="1.0">
<category><pattern>WHAT IS THE SECRET WORD</pattern>
<template>The secret word is {word}, says <bot name="name"/>.</template></category>
<category><pattern>I LIKE *</pattern>
<template><think><set name="like"><star/></set></think>Noted.</template></category>
<category><pattern>WHAT DO I LIKE</pattern>
<template>You like <get name="like"/>.</template></category>
<category><pattern>SAY NOTHING</pattern>
<template><think><set name="topic">silence</set></think></template></category>
<category><pattern>RUN A COMMAND</pattern>
<template>Result: <system>echo pwned</system></template></category>
</aiml>
"""


# Solver data is learned once per module, in a cache of its own: never the user's.
pytestmark = pytest.mark.usefixtures("isolated_cache")


@pytest.fixture
def custom_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "my-aiml"
    directory.mkdir()
    (directory / "mine.aiml").write_text(CUSTOM_AIML.format(word="pineapple"), encoding="utf-8")
    return directory


StartPersona = Callable[[dict[str, Any]], Awaitable[Persona]]


@pytest.fixture
async def start_persona() -> AsyncIterator[StartPersona]:
    client = httpx.AsyncClient()
    personas: list[Persona] = []

    async def start(block: dict[str, Any]) -> Persona:
        data = {"name": "chatty", "solvers": [SOLVER], SOLVER: block}
        persona = Persona(parse_persona(data, source="<test>", default_name="chatty"), http=lambda: client)
        await persona.start()
        await persona.wait_ready()
        assert persona.status()["solvers"][0]["state"] == "ready", persona.status()
        personas.append(persona)
        return persona

    yield start
    for persona in personas:
        await persona.close()
    await client.aclose()


def solver_of(persona: Persona) -> AIMLSolver:
    solver = persona.slots[0].solver
    assert isinstance(solver, AIMLSolver)
    return solver


async def ask(persona: Persona, question: str, **kwargs: Any) -> Answer:
    return await persona.answer(Query.from_text(question, **kwargs))


async def test_alice_chats_and_uses_the_cached_brain(start_persona: StartPersona, isolated_cache: Path) -> None:
    first = await start_persona({"name": "Marvin"})
    assert not solver_of(first).loaded_from_cache
    brain = solver_of(first).brain_file
    assert brain is not None and brain.is_file() and brain.parent.parent == isolated_cache

    hello = await ask(first, "hello")
    assert hello.solver == SOLVER
    assert hello.text.strip() and hello.text[-1] in ".!?"
    name = await ask(first, "What is your name?")
    assert "Marvin" in name.text

    # A second start with the same AIML loads the saved brain instead of learning ~98,000 categories again.
    mtime = brain.stat().st_mtime_ns
    second = await start_persona({"name": "Ford", "master": "Zaphod"})
    assert solver_of(second).loaded_from_cache
    assert solver_of(second).brain_file == brain and brain.stat().st_mtime_ns == mtime
    assert "Ford" in (await ask(second, "what is your name")).text
    # Bot predicates come from the persona block; the cached brain is shared, the names are not.
    assert "Zaphod" in (await ask(second, "who created you")).text
    assert "Marvin" in (await ask(first, "what is your name")).text


async def test_custom_aiml_is_learned_in_addition(start_persona: StartPersona, custom_dir: Path) -> None:
    persona = await start_persona({"aiml_dir": str(custom_dir), "name": "Deep Thought"})
    answer = await ask(persona, "what is the secret word?")
    assert answer.text == "The secret word is pineapple, says Deep Thought."
    assert (await ask(persona, "hello")).text.strip()  # ALICE is still there


async def test_editing_aiml_dir_relearns(start_persona: StartPersona, custom_dir: Path) -> None:
    first = await start_persona({"aiml_dir": str(custom_dir), "alice": False})
    assert "pineapple" in (await ask(first, "what is the secret word")).text
    old_brain = solver_of(first).brain_file
    assert old_brain is not None

    path = custom_dir / "mine.aiml"
    path.write_text(CUSTOM_AIML.format(word="mango"), encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = await start_persona({"aiml_dir": str(custom_dir), "alice": False})
    assert not solver_of(second).loaded_from_cache
    assert "mango" in (await ask(second, "what is the secret word")).text
    # The stale brain of the same configuration is removed, so the cache does not grow with every edit.
    assert not old_brain.exists()

    third = await start_persona({"aiml_dir": str(custom_dir), "alice": False})
    assert solver_of(third).loaded_from_cache


async def test_sessions_are_per_conversation(start_persona: StartPersona, custom_dir: Path) -> None:
    persona = await start_persona({"aiml_dir": str(custom_dir), "alice": False})
    assert (await ask(persona, "I like tea", user="ann")).text == "Noted."
    assert (await ask(persona, "what do I like", user="ann")).text == "You like tea."
    assert "tea" not in (await ask(persona, "what do I like", user="bob")).text


async def test_anonymous_requests_share_nothing_and_replay_their_history(
        start_persona: StartPersona, custom_dir: Path) -> None:
    persona = await start_persona({"aiml_dir": str(custom_dir), "alice": False})
    solver = solver_of(persona)
    assert (await ask(persona, "I like tea")).text == "Noted."
    # Another anonymous request, however it opens, was told nothing; and nothing stays behind in the kernel.
    assert "tea" not in (await ask(persona, "what do I like")).text
    assert not any(key.startswith("anon:") for key in solver._kernel.getSessionData())  # type: ignore[union-attr]
    # The history a request carries is its conversation, in any process.
    history = [Message("user", "I like tea"), Message("assistant", "Noted."), Message("user", "what do I like")]
    assert (await persona.answer(Query(messages=history))).text == "You like tea."


async def test_no_answer_is_none(start_persona: StartPersona, custom_dir: Path) -> None:
    persona = await start_persona({"aiml_dir": str(custom_dir), "alice": False})
    for question in ("say nothing", "something no pattern matches", "   "):
        answer = await ask(persona, question)
        assert answer.solver is None  # the chain's apology, not the solver's
    # ALICE is English: other languages are left to the rest of the chain.
    assert (await ask(persona, "what is the secret word", lang="fr")).solver is None


async def test_templates_cannot_run_commands(start_persona: StartPersona, custom_dir: Path) -> None:
    persona = await start_persona({"aiml_dir": str(custom_dir), "alice": False})
    text = (await ask(persona, "run a command")).text
    assert "pwned" not in text


async def test_corrupt_cached_brain_is_relearned(start_persona: StartPersona, custom_dir: Path) -> None:
    first = await start_persona({"aiml_dir": str(custom_dir), "alice": False})
    brain = solver_of(first).brain_file
    assert brain is not None
    brain.write_bytes(b"not a brain")
    second = await start_persona({"aiml_dir": str(custom_dir), "alice": False})
    assert not solver_of(second).loaded_from_cache
    assert "pineapple" in (await ask(second, "what is the secret word")).text


async def test_missing_aiml_dir_fails_that_solver_only(tmp_path: Path) -> None:
    data = {
        "name": "p",
        "solvers": [SOLVER, "ovos-solver-failure-plugin"],
        SOLVER: {"aiml_dir": str(tmp_path / "nowhere"), "alice": False},
    }
    client = httpx.AsyncClient()
    persona = Persona(parse_persona(data, source="<test>", default_name="p"), http=lambda: client)
    await persona.start()
    await persona.wait_ready()
    status = persona.status()["solvers"]
    assert status[0]["state"] == "error" and "not a directory" in status[0]["error"]
    assert (await ask(persona, "hello")).solver == "ovos-solver-failure-plugin"
    await persona.close()
    await client.aclose()


def test_tidy() -> None:
    assert tidy("How are you  ?") == "How are you?"
    assert tidy("  Hi there ,  Bob .  ") == "Hi there, Bob."


async def test_unwritable_cache_still_answers(
    start_persona: StartPersona, custom_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    monkeypatch.setenv("PERSONA_SERVER_CACHE", str(blocker))
    persona = await start_persona({"aiml_dir": str(custom_dir), "alice": False})
    assert solver_of(persona).brain_file is None
    assert "pineapple" in (await ask(persona, "what is the secret word")).text


async def test_old_conversations_are_forgotten(start_persona: StartPersona, custom_dir: Path) -> None:
    persona = await start_persona({"aiml_dir": str(custom_dir), "alice": False, "max_sessions": 2})
    for user, thing in (("ann", "tea"), ("bob", "coffee"), ("cat", "milk")):
        await ask(persona, f"I like {thing}", user=user)
    # Only the two most recent conversations are kept; the oldest starts afresh.
    assert (await ask(persona, "what do I like", user="cat")).text == "You like milk."
    assert (await ask(persona, "what do I like", user="bob")).text == "You like coffee."
    assert "tea" not in (await ask(persona, "what do I like", user="ann")).text
