"""The DuckDuckGo solver against replayed Instant Answer API replies."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import pytest

from persona_server.persona import Persona
from persona_server.query import Answer, Query, Source
from persona_server.solvers.ddg import DuckDuckGoSolver
from tests.replay import ReplayServer, Reply

MakePersona = Callable[[dict[str, Any]], Awaitable[Persona]]
DDG = "ovos-solver-ddg-plugin"
DONT_KNOW = "No idea."


def persona_data(base_url: str, **options: Any) -> dict[str, Any]:
    return {
        "name": "ddg",
        "solvers": [DDG, "ovos-solver-failure-plugin"],
        DDG: {"base_url": base_url, **options},
        "ovos-solver-failure-plugin": {"answers": [DONT_KNOW]},
    }


async def ask(persona: Persona, text: str, lang: str = "en") -> Answer:
    return await persona.answer(Query.from_text(text, lang=lang))


def solver_of(persona: Persona) -> DuckDuckGoSolver:
    solver = persona.slots[0].solver
    assert isinstance(solver, DuckDuckGoSolver)
    return solver


@pytest.fixture
def ddg(replay: ReplayServer) -> ReplayServer:
    for name in ("einstein", "obama", "serendipity", "answer", "mercury", "empty", "pt_buraco_negro"):
        replay.add_recorded(f"ddg_{name}.json")
    return replay


async def test_abstract_with_source(ddg: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(ddg.url))
    answer = await ask(persona, "Who was Albert Einstein?")
    assert answer.solver == DDG
    assert answer.text == ("Albert Einstein was a theoretical physicist born in Ulm. "
                           "He is known for the theories of relativity.")
    assert answer.sources == [Source("Wikipedia", "https://en.wikipedia.org/wiki/Albert_Einstein")]
    [request] = ddg.received("/")
    assert request.params == {
        "q": ["Albert Einstein"], "format": ["json"], "no_html": ["1"], "skip_disambig": ["1"],
        "no_redirect": ["1"], "kl": ["us-en"], "t": ["persona-server"],
    }
    assert request.headers["user-agent"].startswith("persona-server/")


async def test_definition_and_instant_answer(ddg: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(ddg.url))
    answer = await ask(persona, "define serendipity")
    assert answer.text == "serendipity definition: the knack of finding pleasant things without looking for them."
    assert answer.sources == [Source("Example Dictionary", "https://dictionary.example.org/serendipity")]
    answer = await ask(persona, "what is sha1 of hello")
    assert answer.text == "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
    assert answer.sources[0].url == "https://duckduckgo.com/?q=sha1%20of%20hello"


async def test_birth_date_from_the_infobox(ddg: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(ddg.url))
    answer = await ask(persona, "When was Albert Einstein born?")
    assert answer.text == ("Albert Einstein was born on March 14, 1879, in Ulm, Kingdom of Württemberg, "
                           "German Empire.")
    assert answer.sources == [Source("Wikipedia", "https://en.wikipedia.org/wiki/Albert_Einstein")]
    answer = await ask(persona, "Wann wurde Albert Einstein geboren?", lang="de")
    assert answer.text == ("Albert Einstein wurde am 14. März 1879 in Ulm, Kingdom of Württemberg, "
                           "German Empire geboren.")
    # One look-up served "who", "when born" and (below) "how old": the reply is cached, not the phrasing.
    await ask(persona, "how old was Albert Einstein")
    assert len(ddg.received()) == 2  # en and de regions are asked apart


async def test_age_is_computed_from_the_birth_date(ddg: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(ddg.url))
    solver_of(persona).today = lambda: date(2024, 8, 3)
    assert (await ask(persona, "How old is Barack Obama?")).text == "Barack Obama is 62 years old."
    solver_of(persona).today = lambda: date(2024, 8, 4)
    assert (await ask(persona, "how old is Barack Obama")).text == "Barack Obama is 63 years old."
    assert (await ask(persona, "quantos anos tem Barack Obama", lang="pt")).text == "Barack Obama tem 63 anos."
    assert (await ask(persona, "¿Cuántos años tiene Barack Obama?", lang="es")).text == \
        "Barack Obama tiene 63 años."
    # Someone who died: the age at death, with the date, whatever today is.
    answer = await ask(persona, "how old is Albert Einstein")
    assert answer.text == "Albert Einstein died on April 18, 1955, at the age of 76."
    answer = await ask(persona, "Quel âge a Albert Einstein ?", lang="fr")
    assert answer.text == "Albert Einstein nous a quittés le 18 avril 1955, à 76 ans."


async def test_facts_missing_from_the_infobox_mean_no_answer(ddg: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(ddg.url))
    # "serendipity" has no infobox: a question about its age is not answered with its definition.
    assert (await ask(persona, "how old is serendipity")).text == DONT_KNOW
    assert (await ask(persona, "when was serendipity born")).text == DONT_KNOW


async def test_disambiguation_and_empty_results(ddg: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(ddg.url))
    assert (await ask(persona, "what is Mercury")).text == DONT_KNOW
    assert (await ask(persona, "what is Qwzxv Plorbt")).text == DONT_KNOW
    assert len(ddg.received()) == 2


async def test_region_follows_the_language(ddg: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(ddg.url))
    await ask(persona, "o que é um buraco negro", lang="pt")
    await ask(persona, "o que é um buraco negro", lang="pt-BR")
    answer = await ask(persona, "who was Albert Einstein", lang="en-GB")
    assert [r.param("kl") for r in ddg.received()] == ["pt-pt", "br-pt", "uk-en"]
    assert answer.solver == DDG
    ddg.clear()
    persona = await make_persona(persona_data(ddg.url, region="de-de"))
    await ask(persona, "who was Albert Einstein")
    assert ddg.received()[0].param("kl") == "de-de"


async def test_special_characters_are_encoded(replay: ReplayServer, make_persona: MakePersona) -> None:
    term = "AT&T #1? 50% + Zoë"
    replay.add("/", json={"AbstractText": "A made-up abstract.", "AbstractSource": "Wikipedia",
                          "AbstractURL": "https://en.wikipedia.org/wiki/X", "Type": "A"}, query={"q": term})
    persona = await make_persona(persona_data(replay.url))
    answer = await ask(persona, f"what is {term}?")
    assert answer.text == "A made-up abstract."
    [request] = replay.received()
    assert request.param("q") == term
    for encoded in ("%26", "%23", "%3F", "%25", "%2B", "Zo%C3%AB"):
        assert encoded in request.raw_query


@pytest.mark.parametrize(
    "reply",
    [Reply(status=500, text="oops"), Reply(status=403, text="Forbidden"), Reply(status=202, text=""),
     Reply(text="not json"), Reply(json=[1, 2]),
     Reply(json={"AbstractText": 42, "Infobox": {"content": "nope"}, "Answer": {"from": "calculator"}})],
)
async def test_failing_service_means_no_answer(
    replay: ReplayServer, make_persona: MakePersona, reply: Reply
) -> None:
    replay.add("/", reply)
    persona = await make_persona(persona_data(replay.url))
    assert (await ask(persona, "who was Albert Einstein")).text == DONT_KNOW
    assert (await ask(persona, "how old is Albert Einstein")).text == DONT_KNOW


async def test_hang_and_offline_give_up_quickly(replay: ReplayServer, make_persona: MakePersona) -> None:
    replay.add("/", Reply(hang=True))
    persona = await make_persona(persona_data(replay.url, timeout=0.4))
    started = time.monotonic()
    assert (await ask(persona, "who was Albert Einstein")).solver == "ovos-solver-failure-plugin"
    assert time.monotonic() - started < 1.2
    persona = await make_persona(persona_data("http://127.0.0.1:1"))
    started = time.monotonic()
    assert (await ask(persona, "who was Albert Einstein")).text == DONT_KNOW
    assert time.monotonic() - started < 1


async def test_cache_and_ttl(ddg: ReplayServer, make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(ddg.url, cache_ttl=30))
    await ask(persona, "who was Albert Einstein")
    await ask(persona, "tell me about Albert Einstein")
    assert len(ddg.received()) == 1
    now = time.monotonic()
    solver_of(persona).cache.clock = lambda: now + 31
    await ask(persona, "who was Albert Einstein")
    assert len(ddg.received()) == 2


def test_registration() -> None:
    from persona_server.solvers import registry

    assert registry.resolve("ovos-solver-plugin-ddg") is DuckDuckGoSolver
    assert registry.resolve("ovos-solver-ddg-plugin") is DuckDuckGoSolver
    assert DuckDuckGoSolver.speculative is True and DuckDuckGoSolver.default_timeout <= 5
