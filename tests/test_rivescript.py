"""The RiveScript solver through a real Persona: its shipped brain, memory per conversation, brain_dir."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from persona_server.persona import Persona
from persona_server.query import Answer, Message, Query
from persona_server.solvers.rivescript import LRUSessions, RiveScriptSolver, age_from_birthday, clean_message

RIVE = "ovos-solver-rivescript-plugin"
FAILURE = "ovos-solver-failure-plugin"

MakePersona = Callable[..., Awaitable[Persona]]


@pytest.fixture
def make_persona(make_persona: Callable[[dict[str, Any]], Awaitable[Persona]]) -> MakePersona:
    """A RiveScript persona: `await make_persona(config, solvers=..., name=...)`."""

    async def make(config: dict[str, Any] | None = None, *, solvers: list[str] | None = None,
                   name: str = "Test Bot") -> Persona:
        data: dict[str, Any] = {"name": name, "solvers": solvers or [RIVE, FAILURE]}
        if config is not None:
            data[RIVE] = config
        return await make_persona(data)

    return make


async def ask(persona: Persona, text: str, conversation: str = "c1", lang: str = "en") -> Answer:
    return await persona.answer(Query.from_text(text, user=conversation, lang=lang))


async def said(persona: Persona, text: str, conversation: str = "c1", lang: str = "en") -> str:
    """The RiveScript solver's answer; fails when another solver had to answer."""
    answer = await ask(persona, text, conversation, lang)
    assert answer.solver == RIVE, f"{text!r} was not answered by RiveScript but by {answer.solver}"
    assert answer.text.strip()
    return answer.text


def rive_solver(persona: Persona) -> RiveScriptSolver:
    solver = persona.slots[0].solver
    assert isinstance(solver, RiveScriptSolver)
    return solver


# -- greetings and small talk ------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "hello", "Hi!", "hey there", "Good morning", "howdy", "Hello, bot", "how are you?", "how's it going",
    "what's up", "thanks!", "Thank you very much", "bye", "Goodbye!", "see you later", "good night",
    "nice to meet you", "ok", "lol",
])
async def test_chit_chat_is_answered(make_persona: MakePersona, text: str) -> None:
    persona = await make_persona()
    await said(persona, text)


async def test_greeting_then_request_answers_the_request(make_persona: MakePersona) -> None:
    persona = await make_persona()
    reply = await said(persona, "hi, write a poem about the moon")
    assert "moon" in reply
    # A greeting in front of a factual question must not hide the question from later solvers.
    assert (await ask(persona, "hello, what is the capital of France?")).solver == FAILURE


async def test_goodbye_uses_the_remembered_name(make_persona: MakePersona) -> None:
    persona = await make_persona()
    await said(persona, "my name is Ana")
    assert "Ana" in await said(persona, "bye")


async def test_self_description_comes_from_config(make_persona: MakePersona) -> None:
    today = date.today()
    config = {"name": "Ada", "favorite_color": "purple", "favorite_movie": "Metropolis",
              "birthday": f"{today.year - 7}-01-01", "master": "Grace"}
    persona = await make_persona(config)
    for question in ("what's your name?", "What is your name", "who are you?", "what should I call you"):
        assert "Ada" in await said(persona, question)
    assert "purple" in await said(persona, "what's your favourite colour?")
    assert "Metropolis" in await said(persona, "what is your favorite movie")
    assert "7" in await said(persona, "how old are you?")
    assert "Grace" in await said(persona, "who made you?")
    assert "joke" in (await said(persona, "what can you do?")).lower()


async def test_defaults_name_the_bot_after_the_persona(make_persona: MakePersona) -> None:
    persona = await make_persona(name="old_school-bot")
    assert "old school bot" in await said(persona, "what is your name?")
    assert (await said(persona, "what is your favorite color")).strip()
    assert "year" in await said(persona, "how old are you")


def test_age_from_birthday_formats() -> None:
    today = date(2030, 6, 1)
    assert age_from_birthday("2020-06-02", today) == "9"
    assert age_from_birthday("2020-06-01", today) == "10"
    assert age_from_birthday("May 23, 2016", today) == "14"
    assert age_from_birthday("23 May 2016", today) == "14"
    assert age_from_birthday("sometime in 2001", today) == "29"
    assert age_from_birthday("long ago", today) is None


@pytest.mark.parametrize(("short", "long"), [
    ("what's your name", "what is your name"),
    ("I'm sad", "I am sad"),
    ("who's there", "who is there"),
    ("I can't sleep", "I can not sleep"),
])
def test_contractions_are_expanded_before_matching(short: str, long: str) -> None:
    # The brain's own substitutions do the expansion; check they exist for the common forms.
    brain_file = Path(__file__).parent.parent / "src/persona_server/data/rivescript/en/begin.rive"
    subs = {line.split("=")[0].removeprefix("! sub").strip() for line in brain_file.read_text().splitlines()
            if line.startswith("! sub")}
    contractions = [w for w in clean_message(short).lower().split() if "'" in w]
    assert contractions and all(w in subs for w in contractions)


async def test_contractions_match_like_the_long_form(make_persona: MakePersona) -> None:
    persona = await make_persona({"name": "Ada"})
    assert "Ada" in await said(persona, "What\u2019s your name?")  # typographic apostrophe too
    await said(persona, "I'm sad")
    engine = rive_solver(persona)._brains["en"].engine
    query = Query.from_text("", user="c1", persona=persona.name)
    assert engine.last_match(f"user:{query.conversation_id}").startswith("i am (sad|")
    assert (await ask(persona, "what's the capital of Peru?")).solver == FAILURE


# -- jokes, poems, knock knock ------------------------------------------------------------------------------

async def test_at_least_twenty_distinct_jokes_without_repeats(make_persona: MakePersona) -> None:
    persona = await make_persona()
    asks = ["tell me a joke", "another joke", "tell me something funny", "Tell me a joke!", "another one",
            "make me laugh", "can you tell me a joke?"]
    jokes = [await said(persona, asks[i % len(asks)]) for i in range(24)]
    assert len(set(jokes)) == 24, "a joke was repeated within one conversation"
    # Another conversation is dealt its own jokes: its first is not blocked by what "c1" heard.
    assert await said(persona, "tell me a joke", conversation="other")
    pool = rive_solver(persona)._brains["en"].pools["joke book"]
    assert len(set(pool)) >= 20


async def test_jokes_start_over_when_all_were_told(make_persona: MakePersona, tmp_path: Path) -> None:
    (tmp_path / "jokes.rive").write_text(
        "! version = 2.0\n+ tell me a joke\n- <call>deal joke book</call>\n"
        "+ joke book\n- Alpha joke.\n- Beta joke.\n- Gamma joke.\n", encoding="utf-8")
    persona = await make_persona({"brain_dir": str(tmp_path)})
    first = [await said(persona, "tell me a joke") for _ in range(3)]
    assert sorted(first) == ["Alpha joke.", "Beta joke.", "Gamma joke."]
    fourth = await said(persona, "tell me a joke")
    assert fourth in first and fourth != first[-1]


async def test_two_personas_keep_their_own_joke_books(make_persona: MakePersona, tmp_path: Path) -> None:
    (tmp_path / "jokes.rive").write_text(
        "! version = 2.0\n+ tell me a joke\n- <call>deal joke book</call>\n+ joke book\n- Only joke.\n",
        encoding="utf-8")
    custom = await make_persona({"brain_dir": str(tmp_path)})
    shipped = await make_persona()
    assert await said(custom, "tell me a joke") == "Only joke."
    assert await said(shipped, "tell me a joke") != "Only joke."
    assert await said(custom, "tell me a joke") == "Only joke."


@pytest.mark.parametrize(("request_text", "topic"), [
    ("write a poem about a tree", "tree"),
    ("a poem about the sea", "sea"),
    ("Could you write me a short poem about autumn leaves?", "autumn leaves"),
    ("compose a poem on friendship", "friendship"),
    ("poem about my cat", "your cat"),
])
async def test_poem_uses_the_topic(make_persona: MakePersona, request_text: str, topic: str) -> None:
    persona = await make_persona()
    poem = await said(persona, request_text)
    assert topic in poem.lower()
    assert poem.count("\n") >= 3


async def test_poems_come_in_several_variants(make_persona: MakePersona) -> None:
    persona = await make_persona()
    poems = {await said(persona, "write a poem about the rain") for _ in range(25)}
    assert len(poems) >= 3
    assert "rain" in await said(persona, "another")


async def test_user_tells_a_knock_knock_joke(make_persona: MakePersona) -> None:
    persona = await make_persona()
    assert "who" in (await said(persona, "Knock knock!")).lower()
    assert (await said(persona, "Lettuce")).lower() == "lettuce who?"
    laugh = await said(persona, "Lettuce in, it's cold out here!")
    assert "who" not in laugh.lower()
    # The joke is over: the next message is ordinary conversation again.
    assert (await ask(persona, "who is the president of Brazil?")).solver == FAILURE


async def test_bot_tells_a_knock_knock_joke(make_persona: MakePersona) -> None:
    persona = await make_persona()
    punchlines = set()
    for conversation in ("k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"):
        assert "knock knock" in (await said(persona, "tell me a knock knock joke", conversation)).lower()
        setup = (await said(persona, "Who's there?", conversation)).rstrip(".")
        assert setup and " " not in setup
        punchline = await said(persona, f"{setup} who?", conversation)
        assert punchline.lower() != f"{setup.lower()} who?"
        punchlines.add(punchline)
        assert (await ask(persona, "what is the speed of light?", conversation)).solver == FAILURE
    assert len(punchlines) >= 2


async def test_leaving_a_knock_knock_joke_midway(make_persona: MakePersona) -> None:
    persona = await make_persona({"name": "Ada"})
    await said(persona, "tell me a knock knock joke")
    assert "Ada" in await said(persona, "what is your name?")


# -- memory per conversation --------------------------------------------------------------------------------

async def test_name_is_remembered_per_conversation(make_persona: MakePersona) -> None:
    persona = await make_persona()
    assert "Ana" in await said(persona, "My name is Ana", "alice")
    assert "Ana" in await said(persona, "what is my name?", "alice")
    assert "Ana" in await said(persona, "What's my name", "alice")
    other = await said(persona, "what is my name?", "bob")
    assert "Ana" not in other and "haven't told me" in other
    await said(persona, "call me Bruno", "bob")
    assert "Bruno" in await said(persona, "who am I?", "bob")
    assert "Ana" in await said(persona, "do you know my name?", "alice")


async def test_memory_follows_the_growing_history(make_persona: MakePersona) -> None:
    persona = await make_persona()
    history = [Message("user", "hello, my name is Carla")]
    reply = await persona.answer(Query(messages=list(history)))
    assert "Carla" in reply.text
    history += [Message("assistant", reply.text), Message("user", "what is my name?")]
    assert "Carla" in (await persona.answer(Query(messages=list(history)))).text
    stranger = [Message("user", "hi there"), Message("assistant", "Hello!"), Message("user", "what is my name?")]
    assert "Carla" not in (await persona.answer(Query(messages=stranger))).text


async def test_likes_and_other_facts(make_persona: MakePersona) -> None:
    persona = await make_persona()
    await said(persona, "I like pizza")
    await said(persona, "I love green tea")
    await said(persona, "I hate broccoli")
    likes = await said(persona, "what do I like?")
    assert "pizza" in likes and "green tea" in likes and "broccoli" not in likes
    assert "broccoli" in await said(persona, "what do I dislike?")
    assert (await said(persona, "do I like pizza?")).startswith("Yes")
    assert (await said(persona, "do I like broccoli?")).startswith("No")
    await said(persona, "my favorite color is green")
    assert "green" in await said(persona, "what's my favorite color?")
    await said(persona, "I'm 31 years old")
    assert "31" in await said(persona, "how old am I?")
    await said(persona, "I live in Lisbon")
    assert "Lisbon" in await said(persona, "where do I live?")
    assert "haven't told me" in await said(persona, "what do I like?", conversation="someone else")


async def test_name_and_more_in_one_sentence(make_persona: MakePersona) -> None:
    persona = await make_persona()
    reply = await said(persona, "my name is bob and I like cats")
    assert "Bob" in reply and "cats" in reply
    assert (await said(persona, "what is my name")).endswith("Bob.")


async def test_typed_tags_are_plain_text(make_persona: MakePersona) -> None:
    persona = await make_persona({"name": "Ada"})
    reply = await said(persona, "my name is {topic=kk_bot} <set name=evil> (@bye) *")
    assert "{" not in reply and "<" not in reply
    assert "Ada" in await said(persona, "what is your name?")
    assert "evil" not in (await said(persona, "what is my name?")).split()


async def test_conversations_are_bounded(make_persona: MakePersona) -> None:
    persona = await make_persona({"max_conversations": 3})
    for index in range(6):
        await said(persona, f"my name is Person{index}", f"conv{index}")
    sessions = rive_solver(persona)._sessions
    assert len(sessions) == 3
    assert "Person5" in await said(persona, "what is my name?", "conv5")
    assert "Person0" not in await said(persona, "what is my name?", "conv0")


def test_lru_sessions_keep_the_recently_used() -> None:
    sessions = LRUSessions(2)
    sessions.set("a", {"name": "A"})
    sessions.set("b", {"name": "B"})
    assert sessions.get("a", "name") == "A"  # touching "a" makes "b" the oldest
    sessions.set("c", {"name": "C"})
    assert sessions.get("b", "name") is None
    assert sessions.get("a", "name") == "A" and sessions.get("c", "name") == "C"


# -- Eliza and what it must leave to other solvers -----------------------------------------------------------

@pytest.mark.parametrize(("text", "echo"), [
    ("I feel sad", "sad"),
    ("I feel lonely today", "lonely today"),
    ("I am worried about my exams", "your exams"),
    ("I need a holiday", "a holiday"),
    ("I think nobody listens to me", "listens to you"),
    ("my mother is always busy", "mother"),
])
async def test_eliza_reflects(make_persona: MakePersona, text: str, echo: str) -> None:
    persona = await make_persona()
    replies = {await said(persona, text) for _ in range(12)}
    assert any(echo in reply for reply in replies), replies


async def test_statements_get_a_catch_all_answer(make_persona: MakePersona) -> None:
    persona = await make_persona()
    await said(persona, "the weather was lovely at the beach")
    await said(persona, "blorp")


@pytest.mark.parametrize("text", [
    "what is the capital of France?", "What's the speed of light", "who is Ada Lovelace?",
    "who was the first man on the moon", "when did World War 2 end?", "where is Timbuktu?",
    "how many legs does a spider have?", "how much does the earth weigh", "why is the sky blue?",
    "which planet is the largest", "what are black holes", "is the earth flat?", "does a fish sleep?",
    "tell me about Paris", "define serendipity", "explain photosynthesis",
    "do you know who invented the telephone?", "can you tell me what time it is",
    "the capital of Portugal?", "Lisbon population?",
])
async def test_factual_questions_are_left_to_other_solvers(make_persona: MakePersona, text: str) -> None:
    persona = await make_persona()
    answer = await ask(persona, text)
    assert answer.solver == FAILURE, f"RiveScript answered {text!r} with {answer.text!r}"
    alone = await make_persona(solvers=[RIVE])
    assert (await ask(alone, text)).solver is None


async def test_questions_about_itself_and_the_user_are_answered(make_persona: MakePersona) -> None:
    persona = await make_persona()
    for text in ("are you a robot?", "do you like music?", "what do you think about cats?", "are you happy?",
                 "who made you?", "what is my name?", "where are you from?", "how are you?",
                 "why are you so funny?", "can you help me?"):
        await said(persona, text)


# -- configuration -----------------------------------------------------------------------------------------

async def test_brain_dir_adds_and_replaces_files(make_persona: MakePersona, tmp_path: Path) -> None:
    (tmp_path / "extra.rive").write_text(
        "! version = 2.0\n+ what is the secret word\n- The secret word is <bot secret_word>.\n"
        "+ who is <bot name>\n- That is me!\n", encoding="utf-8")
    # Same name as a shipped file: the shipped greetings are gone.
    (tmp_path / "greetings.rive").write_text("! version = 2.0\n+ hello\n- Ahoy, sailor!\n", encoding="utf-8")
    persona = await make_persona({"brain_dir": str(tmp_path), "name": "Ada"})
    assert await said(persona, "hello") == "Ahoy, sailor!"
    assert "The secret word is" in await said(persona, "What is the secret word?")
    assert await said(persona, "who is Ada?") == "That is me!"
    # Files not replaced are still loaded.
    assert "Ada" in await said(persona, "what is your name")
    # The shipped greetings.rive had "good morning": it went with the file.
    assert (await ask(persona, "good morning")).text != "Good morning to you too! How are you?"


async def test_brain_dir_language_subdirectory(make_persona: MakePersona, tmp_path: Path) -> None:
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "salut.rive").write_text("! version = 2.0\n+ bonjour\n- Bonjour à toi !\n+ *\n- <noreply>\n",
                                               encoding="utf-8")
    persona = await make_persona({"brain_dir": str(tmp_path)})
    assert await said(persona, "Bonjour", lang="fr-FR") == "Bonjour à toi !"
    assert (await ask(persona, "je suis triste", lang="fr")).solver == FAILURE
    # Other languages are untouched.
    await said(persona, "hello", lang="en-US")


async def test_unknown_language_falls_back_to_english(make_persona: MakePersona) -> None:
    persona = await make_persona({"name": "Ada"})
    assert "Ada" in await said(persona, "what is your name?", lang="de-DE")


async def test_missing_brain_dir_fails_only_this_solver(make_persona: MakePersona, tmp_path: Path) -> None:
    persona = await make_persona({"brain_dir": str(tmp_path / "nope")})
    assert persona.slots[0].state == "error"
    assert (await ask(persona, "hello")).solver == FAILURE


async def test_concurrent_conversations_stay_apart(make_persona: MakePersona) -> None:
    persona = await make_persona()
    names = [f"Name{i}" for i in range(30)]
    await asyncio.gather(*(said(persona, f"my name is {n}", n) for n in names))
    replies = await asyncio.gather(*(said(persona, "what is my name?", n) for n in names))
    assert all(reply == f"Your name is {n}." for n, reply in zip(names, replies, strict=True))


async def test_empty_message_is_not_answered(make_persona: MakePersona) -> None:
    persona = await make_persona(solvers=[RIVE])
    assert (await ask(persona, "   ")).solver is None
    assert (await ask(persona, "?!")).solver is None


# -- Portuguese ----------------------------------------------------------------------------------------------

async def test_portuguese_brain_is_chosen_by_language(make_persona: MakePersona) -> None:
    persona = await make_persona({"name": "Ada"})
    assert "Ada" in await said(persona, "Qual é o teu nome?", lang="pt-BR")
    assert "Ada" in await said(persona, "what is your name?", lang="en")
    await said(persona, "o meu nome é Ana", "pt1", lang="pt-PT")
    assert "Ana" in await said(persona, "qual é o meu nome?", "pt1", lang="pt-PT")
    assert "Ana" not in await said(persona, "qual é o meu nome?", "pt2", lang="pt-PT")
    await said(persona, "gosto de café", "pt1", lang="pt")
    await said(persona, "adoro praia", "pt1", lang="pt")
    assert "café e praia" in await said(persona, "de que gosto eu?", "pt1", lang="pt")


async def test_portuguese_jokes_poems_and_questions(make_persona: MakePersona) -> None:
    persona = await make_persona()
    jokes = {await said(persona, "conta-me uma anedota", lang="pt") for _ in range(10)}
    assert len(jokes) == 10
    assert "o mar" in await said(persona, "escreve um poema sobre o mar", lang="pt")
    assert "triste" in await said(persona, "sinto-me triste", lang="pt")
    for question in ("qual é a capital de França?", "quem foi Camões?", "quantos habitantes tem Lisboa?"):
        assert (await ask(persona, question, lang="pt")).solver == FAILURE
