"""The shared look-up helpers: question parsing, sentence cutting, the TTL answer cache."""

from __future__ import annotations

import asyncio

import pytest

from persona_server.solvers.ddg import region_for
from persona_server.solvers.lookup import USER_AGENT, AnswerCache, LookupFailed
from persona_server.solvers.lookup_text import LookupQuestion, first_sentences, parse_question, valid_lang


@pytest.mark.parametrize(
    ("text", "lang", "term", "intent"),
    [
        ("What is a cat?", "en", "cat", "about"),
        ("what's an aardvark", "en", "aardvark", "about"),
        ("Who was Albert Einstein?", "en", "Albert Einstein", "about"),
        ("who is Ada Lovelace", "en", "Ada Lovelace", "about"),
        ("Tell me about the Eiffel Tower.", "en", "the Eiffel Tower", "about"),
        ("tell me something about volcanoes", "en", "volcanoes", "about"),
        ("What do you know about black holes?", "en", "black holes", "about"),
        ("define serendipity", "en", "serendipity", "about"),
        ("Hey, can you tell me what is the speed of light?", "en", "the speed of light", "about"),
        ("When was Marie Curie born?", "en", "Marie Curie", "born"),
        ("what is Einstein's birthday", "en", "Einstein", "born"),
        ("How old is Barack Obama?", "en", "Barack Obama", "age"),
        ("what is the age of the universe", "en", "the universe", "age"),
        ("what is C++ & C#?", "en", "C++ & C#", "about"),
        ("who is Zoë Saldaña", "en", "Zoë Saldaña", "about"),
        ("o que é um buraco negro?", "pt", "buraco negro", "about"),
        ("Quem foi Fernando Pessoa", "pt-BR", "Fernando Pessoa", "about"),
        ("fala-me sobre Lisboa", "pt", "Lisboa", "about"),
        ("quando nasceu Camões?", "pt", "Camões", "born"),
        ("quantos anos tem o Cristiano Ronaldo", "pt", "Cristiano Ronaldo", "age"),
        ("¿Qué es la fotosíntesis?", "es", "fotosíntesis", "about"),
        ("háblame de Madrid", "es", "Madrid", "about"),
        ("¿Cuándo nació Cervantes?", "es", "Cervantes", "born"),
        ("¿Cuántos años tiene Rafael Nadal?", "es", "Rafael Nadal", "age"),
        ("Qu'est-ce que la photosynthèse ?", "fr", "photosynthèse", "about"),
        ("qui était Victor Hugo", "fr", "Victor Hugo", "about"),
        ("quand est né Victor Hugo", "fr", "Victor Hugo", "born"),
        ("Quel âge a Emmanuel Macron ?", "fr", "Emmanuel Macron", "age"),
        ("Was ist ein schwarzes Loch?", "de", "schwarzes Loch", "about"),
        ("Erzähl mir etwas über Berlin", "de", "Berlin", "about"),
        ("Wann wurde Goethe geboren?", "de", "Goethe", "born"),
        ("Wie alt ist Angela Merkel", "de", "Angela Merkel", "age"),
        # English wording from an asker whose language is set to Portuguese still parses.
        ("who is Ada Lovelace", "pt", "Ada Lovelace", "about"),
    ],
)
def test_question_forms(text: str, lang: str, term: str, intent: str) -> None:
    assert parse_question(text, lang) == LookupQuestion(term=term, intent=intent)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["hello", "who are you", "what is your name", "what's up", "what is it", "what time is it", "what is 2+2",
     "tell me a joke", "", "   ?  ", "how are you", "what is my name", "quem é você", "o que é isso"],
)
def test_not_look_up_questions(text: str) -> None:
    # Portuguese askers get the English forms too, so this covers both.
    assert parse_question(text, "pt") is None


def test_bare_terms_only_when_asked() -> None:
    assert parse_question("Albert Einstein?", "en") is None
    assert parse_question("Albert Einstein?", "en", bare=True) == LookupQuestion("Albert Einstein")


def test_first_sentences_keeps_abbreviations_and_initials_together() -> None:
    text = ("J. R. R. Tolkien ( ; 3 January 1892 - 2 September 1973) was a writer. He met Dr. Smith in the "
            "U.S. Army. Third sentence here.")
    assert first_sentences(text, 1) == "J. R. R. Tolkien (3 January 1892 - 2 September 1973) was a writer."
    assert first_sentences(text, 2).endswith("He met Dr. Smith in the U.S. Army.")
    assert first_sentences(text, 9).endswith("Third sentence here.")
    assert first_sentences("No full stop at all", 2) == "No full stop at all"


def test_region_and_language_codes() -> None:
    assert region_for("en") == "us-en"
    assert region_for("en-GB") == "uk-en"
    assert region_for("pt") == "pt-pt"
    assert region_for("pt-BR") == "br-pt"
    assert region_for("de-CH") == "ch-de"
    assert region_for("xx") == "wt-wt"
    # A language tag goes into a host name: anything but a plain subtag falls back.
    assert valid_lang("pt") == "pt"
    assert valid_lang("evil.example/x") == "en"
    assert valid_lang("a") == "en"


def test_user_agent_is_descriptive() -> None:
    assert USER_AGENT.startswith("persona-server/") and "(+https://" in USER_AGENT


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_cache_reuses_until_ttl_expires() -> None:
    clock = FakeClock()
    cache: AnswerCache[str] = AnswerCache(ttl=60, clock=clock)
    calls: list[str] = []

    async def fetch() -> str:
        calls.append("x")
        return f"answer {len(calls)}"

    assert await cache.get_or_fetch("k", fetch) == "answer 1"
    clock.now += 59
    assert await cache.get_or_fetch("k", fetch) == "answer 1"
    clock.now += 2
    assert await cache.get_or_fetch("k", fetch) == "answer 2"
    assert len(calls) == 2


async def test_cache_is_bounded_and_never_stores_failures() -> None:
    cache: AnswerCache[int] = AnswerCache(ttl=60, max_entries=3)
    for n in range(5):
        await cache.get_or_fetch(n, lambda n=n: _value(n))
    assert len(cache) == 3
    assert cache.get(0) == (False, None) and cache.get(4) == (True, 4)

    async def failing() -> int:
        raise LookupFailed("down")

    with pytest.raises(LookupFailed):
        await cache.get_or_fetch("bad", failing)
    assert cache.get("bad") == (False, None)


async def test_cache_coalesces_concurrent_identical_lookups() -> None:
    cache: AnswerCache[str] = AnswerCache(ttl=60)
    started = 0

    async def slow() -> str:
        nonlocal started
        started += 1
        await asyncio.sleep(0.05)
        return "once"

    results = await asyncio.gather(*(cache.get_or_fetch("same", slow) for _ in range(5)))
    assert results == ["once"] * 5 and started == 1


async def test_cache_ttl_zero_disables_it() -> None:
    cache: AnswerCache[int] = AnswerCache(ttl=0)
    await cache.get_or_fetch("k", lambda: _value(1))
    assert len(cache) == 0


async def _value(n: int) -> int:
    return n
