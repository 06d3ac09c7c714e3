"""The Wikipedia solver against replayed MediaWiki Action API replies."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from persona_server.persona import Persona
from persona_server.query import Answer, Query, Source
from persona_server.solvers.wikipedia import WikipediaSolver
from tests.replay import ReplayServer, Reply

MakePersona = Callable[[dict[str, Any]], Awaitable[Persona]]
WIKI = "ovos-solver-wikipedia-plugin"
DONT_KNOW = "I do not know that one."


def persona_data(base_url: str, **options: Any) -> dict[str, Any]:
    return {
        "name": "wiki",
        "solvers": [WIKI, "ovos-solver-failure-plugin"],
        WIKI: {"base_url": base_url, **options},
        "ovos-solver-failure-plugin": {"answers": [DONT_KNOW]},
    }


async def ask(persona: Persona, text: str, lang: str = "en") -> Answer:
    return await persona.answer(Query.from_text(text, lang=lang))


def solver_of(persona: Persona) -> WikipediaSolver:
    solver = persona.slots[0].solver
    assert isinstance(solver, WikipediaSolver)
    return solver


@pytest.fixture
def wiki(replay: ReplayServer) -> ReplayServer:
    for name in ("einstein", "mercury", "unmarked_disambiguation", "only_disambiguation", "empty", "symbols", "zoe"):
        replay.add_recorded(f"wikipedia_{name}.json", prefix="/en")
    replay.add_recorded("wikipedia_pt_buraco_negro.json", prefix="/pt")
    return replay


async def test_answers_first_sentences_of_the_intro_with_its_source(
    wiki: ReplayServer, make_persona: MakePersona
) -> None:
    persona = await make_persona(persona_data(wiki.url + "/{lang}"))
    answer = await ask(persona, "Who was Albert Einstein?")
    assert answer.solver == WIKI
    assert answer.text == (
        "Albert Einstein (EYEN-styne; German: [ˈalbɛʁt ˈʔaɪnʃtaɪn]; 14 March 1879 – 18 April 1955) was a "  # noqa: RUF001
        "theoretical physicist born in Ulm, remembered above all for the theories of relativity. "
        "His ideas reshaped how physicists think about space, time and gravity."
    )
    assert answer.sources == [Source("Albert Einstein", "https://en.wikipedia.org/wiki/Albert_Einstein")]
    [request] = wiki.received("/en/w/api.php")
    assert request.param("gsrsearch") == "Albert Einstein"
    assert request.param("exintro") == "1" and request.param("explaintext") == "1"
    assert "disambiguation" in (request.param("ppprop") or "")
    assert request.headers["user-agent"].startswith("persona-server/")


@pytest.mark.parametrize(
    "question",
    ["what is Albert Einstein", "tell me about Albert Einstein", "When was Albert Einstein born?",
     "how old is Albert Einstein", "can you tell me who was Albert Einstein please"],
)
async def test_question_forms_search_the_same_term(
    wiki: ReplayServer, make_persona: MakePersona, question: str
) -> None:
    persona = await make_persona(persona_data(wiki.url + "/{lang}"))
    answer = await ask(persona, question)
    assert answer.solver == WIKI and answer.text.startswith("Albert Einstein (")


async def test_sentences_option(wiki: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(wiki.url + "/{lang}", sentences=1))
    answer = await ask(persona, "Who was Albert Einstein?")
    assert answer.text.endswith("remembered above all for the theories of relativity.")
    persona = await make_persona(persona_data(wiki.url + "/{lang}", sentences=10))
    answer = await ask(persona, "Who was Albert Einstein?")
    assert answer.text.endswith("He was awarded a Nobel Prize in 1921. Later paragraphs are not part of this test.")


async def test_disambiguation_pages_are_skipped(wiki: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(wiki.url + "/{lang}"))
    answer = await ask(persona, "what is Mercury")
    # The replay lists pages out of rank order: "Mercury" (rank 1) is a disambiguation, the planet is rank 2.
    assert answer.text.startswith("Mercury is the smallest planet")
    assert answer.sources[0].title == "Mercury (planet)"
    # Pages that read like disambiguations but lack the page property are skipped as well.
    answer = await ask(persona, "tell me about Jaguar")
    assert answer.text.startswith("The jaguar is a large cat") and answer.sources[0].title == "Jaguar"


async def test_only_disambiguations_or_no_results_means_no_answer(
    wiki: ReplayServer, make_persona: MakePersona
) -> None:
    persona = await make_persona(persona_data(wiki.url + "/{lang}"))
    assert (await ask(persona, "what is Springfield")).text == DONT_KNOW
    answer = await ask(persona, "what is Qwzxv Plorbt")
    assert answer.text == DONT_KNOW and answer.solver == "ovos-solver-failure-plugin"
    assert [r.param("gsrsearch") for r in wiki.received()] == ["Springfield", "Qwzxv Plorbt"]


async def test_special_characters_are_encoded(wiki: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(wiki.url + "/{lang}"))
    answer = await ask(persona, "What is C++ & C# #1? 100% +?")
    assert answer.sources[0].title == "C Sharp (programming language)"
    [request] = wiki.received()
    assert request.param("gsrsearch") == "C++ & C# #1? 100% +"
    # Each of & # ? + % travels percent-encoded: none can split, cut or change the query.
    raw = request.raw_query
    for encoded in ("%2B%2B", "%26", "%23", "%3F", "%25"):
        assert encoded in raw
    answer = await ask(persona, "who is Zoë Saldaña")
    assert answer.text.startswith("Zoë Saldaña (born June 19, 1978)")
    assert wiki.received()[-1].param("gsrsearch") == "Zoë Saldaña"
    assert "Zo%C3%AB" in wiki.received()[-1].raw_query


async def test_language_of_the_request_picks_the_edition(wiki: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(wiki.url + "/{lang}"))
    answer = await ask(persona, "O que é um buraco negro?", lang="pt-BR")
    assert answer.text == ("Um buraco negro é uma região do espaço de onde nada escapa, nem mesmo a luz. "
                           "Forma-se quando uma estrela muito massiva colapsa.")
    assert answer.sources == [Source("Buraco negro", "https://pt.wikipedia.org/wiki/Buraco_negro")]
    assert [r.path for r in wiki.received()] == ["/pt/w/api.php"]
    # A language tag that is not a plain subtag never reaches the host name.
    wiki.clear()
    await ask(persona, "who was Albert Einstein", lang="x/../evil")
    assert [r.path for r in wiki.received()] == ["/en/w/api.php"]


@pytest.mark.parametrize(
    "reply",
    [Reply(status=500, text="Internal error"), Reply(status=403, text="Forbidden"),
     Reply(status=429, json={"error": "too many requests"}), Reply(text="<html>not json</html>"),
     Reply(json={"error": {"code": "maxlag", "info": "Waiting for a database server"}, "servedby": "mw1"}),
     Reply(json={"query": {"pages": "unexpected"}}), Reply(json=["not", "an", "object"]),
     Reply(json={"query": ["pages"]})],
)
async def test_failing_service_means_no_answer_and_nothing_cached(
    replay: ReplayServer, make_persona: MakePersona, reply: Reply, caplog: pytest.LogCaptureFixture
) -> None:
    replay.add("/en/w/api.php", reply)
    persona = await make_persona(persona_data(replay.url + "/{lang}"))
    for attempt in (1, 2):
        answer = await ask(persona, "who was Albert Einstein")
        assert answer.text == DONT_KNOW
        assert len(replay.received()) == attempt  # a failure is asked again next time
    assert "no answer from Wikipedia" in caplog.text


async def test_hanging_service_gives_up_within_its_timeout(
    replay: ReplayServer, make_persona: MakePersona
) -> None:
    replay.add("/en/w/api.php", Reply(hang=True))
    persona = await make_persona(persona_data(replay.url + "/{lang}", timeout=0.5))
    started = time.monotonic()
    answer = await ask(persona, "who was Albert Einstein")
    assert answer.text == DONT_KNOW and answer.solver == "ovos-solver-failure-plugin"
    assert time.monotonic() - started < 1.5


async def test_slow_service_within_timeout_still_answers(wiki: ReplayServer, make_persona: MakePersona) -> None:
    wiki.add_recorded("wikipedia_einstein.json", prefix="/en", delay=0.3)
    persona = await make_persona(persona_data(wiki.url + "/{lang}", timeout=2))
    assert (await ask(persona, "who was Albert Einstein")).solver == WIKI


async def test_offline_answers_quickly_and_warns_once(
    make_persona: MakePersona, caplog: pytest.LogCaptureFixture
) -> None:
    persona = await make_persona(persona_data("http://127.0.0.1:1/{lang}"))
    with caplog.at_level(logging.DEBUG, logger="persona_server.solvers.lookup"):
        for question in ("who was Albert Einstein", "what is Mercury"):
            started = time.monotonic()
            assert (await ask(persona, question)).text == DONT_KNOW
            assert time.monotonic() - started < 1
    levels = [r.levelname for r in caplog.records if "no answer from Wikipedia: cannot connect" in r.getMessage()]
    # The same failure again within a minute is not worth another warning.
    assert levels == ["WARNING", "DEBUG"]


async def test_cache_serves_repeats_until_ttl(wiki: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(wiki.url + "/{lang}", cache_ttl=60))
    first = await ask(persona, "who was Albert Einstein")
    second = await ask(persona, "Tell me about Albert Einstein!")
    assert second.text == first.text and second.sources == first.sources
    assert len(wiki.received()) == 1
    # "no such page" is an answer too: asked once.
    await ask(persona, "what is Qwzxv Plorbt")
    await ask(persona, "what is Qwzxv Plorbt")
    assert len(wiki.received()) == 2
    # Languages are cached apart.
    await ask(persona, "o que é um buraco negro", lang="pt")
    assert len(wiki.received()) == 3
    cache = solver_of(persona).cache
    now = time.monotonic()
    cache.clock = lambda: now + 61
    await ask(persona, "who was Albert Einstein")
    assert len(wiki.received()) == 4


async def test_cache_ttl_zero_asks_every_time(wiki: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(wiki.url + "/{lang}", cache_ttl=0))
    await ask(persona, "who was Albert Einstein")
    await ask(persona, "who was Albert Einstein")
    assert len(wiki.received()) == 2


async def test_small_talk_is_not_looked_up(wiki: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(wiki.url + "/{lang}"))
    for text in ("hello", "who are you", "what is 2+2", "how are you?"):
        assert (await ask(persona, text)).text == DONT_KNOW
    assert wiki.received() == []


async def test_bare_terms_option(wiki: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(wiki.url + "/{lang}", bare_terms=True))
    assert (await ask(persona, "Albert Einstein")).solver == WIKI


async def test_base_url_must_be_http(make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data("ftp://example.org/{lang}"))
    status = persona.status()["solvers"][0]
    assert status["state"] == "error" and "base_url" in status["error"]
    assert (await ask(persona, "who was Albert Einstein")).text == DONT_KNOW


def test_options_and_registration() -> None:
    from persona_server.solvers import registry

    assert registry.resolve("ovos-solver-wikipedia-plugin") is WikipediaSolver
    assert WikipediaSolver.speculative is True and WikipediaSolver.default_timeout <= 5
    options = WikipediaSolver.Options.model_validate({})
    assert options.base_url == "https://{lang}.wikipedia.org" and options.sentences == 2
