"""The WordNet dictionary solver, driven through a real Persona (its chain, its thread pool)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from persona_server.persona import Persona, parse_persona
from persona_server.query import Answer, Query
from persona_server.solvers import wordnet, wordnet_data

SOLVER = "ovos-solver-wordnet-plugin"
LIGHTHOUSE = "A lighthouse is a tower with a light that gives warning of shoals to passing ships."


# Solver data is learned once per module, in a cache of its own: never the user's.
pytestmark = pytest.mark.usefixtures("isolated_cache")


@pytest.fixture
async def persona() -> AsyncIterator[Persona]:
    spec = parse_persona({"name": "dictionary", "solvers": [SOLVER]}, source="<test>", default_name="dictionary")
    client = httpx.AsyncClient()
    p = Persona(spec, http=lambda: client)
    await p.start()
    await p.wait_ready()
    assert p.status()["solvers"] == [{"name": SOLVER, "state": "ready"}]
    yield p
    await p.close()
    await client.aclose()


async def ask(persona: Persona, question: str, **kwargs: object) -> Answer:
    return await persona.answer(Query.from_text(question, **kwargs))


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("what is a lighthouse", LIGHTHOUSE),
        ("What is a lighthouse?", LIGHTHOUSE),
        ("what are lighthouses", LIGHTHOUSE),
        ("WHAT'S A HOT DOG?", "A hot dog is a frankfurter served hot on a bun."),
        ("what are hot dogs", "A hot dog is a frankfurter served hot on a bun."),
        ("what is an apple",
         "An apple is a fruit with red or yellow or green skin and sweet to tart crisp whitish flesh."),
        ("what is an umbrella", "An umbrella is a lightweight handheld collapsible canopy."),
        ("what is love?", "Love is a strong positive emotion of regard and affection."),
        ("define ice cream", "Ice cream means frozen dessert containing cream and sugar and flavoring."),
        ("Definition of ice-cream", "Ice cream means frozen dessert containing cream and sugar and flavoring."),
        ("what does serendipity mean?", "Serendipity means good luck in making unexpected and fortunate discoveries."),
        ("meaning of serendipity", "Serendipity means good luck in making unexpected and fortunate discoveries."),
        ("What's the meaning of the word lighthouse?",
         "Lighthouse means a tower with a light that gives warning of shoals to passing ships."),
        ("define beautiful", "Beautiful means delighting the senses or exciting intellectual or emotional admiration."),
        # "run" is used far more as a verb than as a noun: the most common sense wins.
        ("define run", "Run means to move fast by using one's feet, with one foot off the ground at any given time."),
        # "love" is a verb slightly more often overall, but its main noun sense is as common as the verb's:
        # "define love" means the emotion, and so do its other definition forms.
        ("define love", "Love means a strong positive emotion of regard and affection."),
        ("what does love mean", "Love means a strong positive emotion of regard and affection."),
        ("meaning of love", "Love means a strong positive emotion of regard and affection."),
        ("define work", "Work means activity directed toward making or doing something."),
        ("define walk", "Walk means to use one's feet to advance."),  # the noun's main sense is rare
        ("define hope", "Hope means to expect and wish."),
        # Within a part of speech, the most frequent sense first ("a written work", not "a rule book").
        ("define book",
         "Book means a written work or composition that has been published (printed on pages bound together)."),
        ("what is a prime number", "A prime number is an integer that has no integral factors but itself and 1."),
        ("opposite of hot", "The opposite of hot is cold."),
        ("What is the opposite of tall?", "The opposite of tall is short."),
        ("antonym of love", "The opposite of love is hate."),
    ],
)
async def test_answers(persona: Persona, question: str, expected: str) -> None:
    answer = await ask(persona, question)
    assert answer.text == expected
    assert answer.solver == SOLVER


@pytest.mark.parametrize(
    ("question", "words"),
    [
        ("synonyms of big", ["large"]),
        ("another word for happy", ["glad", "felicitous"]),
        ("What's another word for computer?", ["computing machine", "data processor"]),
        ("give me a synonym for quickly", ["rapidly"]),
    ],
)
async def test_synonyms(persona: Persona, question: str, words: list[str]) -> None:
    text = (await ask(persona, question)).text
    assert text.startswith(("Other words for", "Another word for")) and text.endswith(".")
    for word in words:
        assert word in text
    # The word itself is never listed as its own synonym.
    subject = question.rsplit(" ", 1)[-1].rstrip("?")
    listed = text.split(" include " if " include " in text else " is ", 1)[1].rstrip(".")
    items = [item.strip() for part in listed.split(", ") for item in part.split(" and ")]
    assert subject not in items and len(items) == len(set(items))


async def test_antonym_through_similar_adjective(persona: Persona) -> None:
    # "gigantic" has no antonym of its own; it is similar to "large", whose opposite is "small".
    text = (await ask(persona, "antonym of gigantic")).text
    assert text.startswith("The opposite of gigantic is ")
    assert "small" in text


@pytest.mark.parametrize(
    "question",
    [
        "hello",
        "how are you",
        "how are you?",
        "what is your name",
        "What is my name?",
        "what time is it",
        "what is the time",
        "who is Albert Einstein",
        "who is a doctor",
        "what's up",
        "what is new",
        "what is going on",
        "what is it",
        "what is this",
        "what are you doing",
        "what is 2 plus 2",
        "what is the capital of France",
        "what is the meaning of life",
        "tell me a joke",
        "what is a qwzxvbnm",
        "define qwzxvbnm",
        "opposite of qwzxvbnm",
        "synonyms of the",
        "",
    ],
)
async def test_not_a_dictionary_question(persona: Persona, question: str) -> None:
    answer = await ask(persona, question)
    assert answer.solver is None  # the chain's apology, not a definition


async def test_english_only(persona: Persona) -> None:
    assert (await ask(persona, "what is a lighthouse", lang="de-DE")).solver is None
    assert (await ask(persona, "what is a lighthouse", lang="en-GB")).text.startswith("A lighthouse is")


def test_articles() -> None:
    assert [wordnet.article(w) for w in ("apple", "hour", "university", "dog", "umbrella", "one-way")] == [
        "an", "an", "a", "a", "an", "a",
    ]


def test_data_copy_is_lf_normalized_and_safe_to_race(tmp_path: Path) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []

    def prepare() -> None:
        try:
            results.append(wordnet_data.prepare_data(tmp_path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=prepare) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(results)) == 1
    target = results[0]
    # Only the finished copy remains: no temporary directories left behind by the losers of the race.
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    source = wordnet_data.source_dir()
    for name in ("data.noun", "index.noun", "lexnames", "noun.exc", "LICENSE"):
        data = (target / name).read_bytes()
        assert b"\r\n" not in data
        assert data == (source / name).read_bytes().replace(b"\r\n", b"\n")


def test_import_is_light() -> None:
    # The registry imports this module when a persona names the solver; the 110 MB load happens in load().
    code = "import sys, persona_server.solvers.wordnet; print('nltk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_license_notice_is_shipped() -> None:
    from importlib.resources import files

    text = files("persona_server.data").joinpath("wordnet", "LICENSE").read_text(encoding="utf-8")
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in text
