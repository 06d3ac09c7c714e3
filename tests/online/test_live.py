"""The look-up solvers against the live services. Run with PERSONA_SERVER_LIVE_TESTS=1 (needs internet);
Wolfram|Alpha also needs WOLFRAM_ALPHA_APPID. Assertions are about shape, not wording, which changes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest

from persona_server.persona import Persona, parse_persona
from persona_server.query import Answer, Query
from persona_server.solvers.wolfram import APPID_ENV

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(os.environ.get("PERSONA_SERVER_LIVE_TESTS") != "1",
                       reason="talks to the live internet: set PERSONA_SERVER_LIVE_TESTS=1"),
]

WIKI, DDG, WOLFRAM = "ovos-solver-plugin-wikipedia", "ovos-solver-plugin-ddg", "ovos-solver-plugin-wolfram-alpha"


@pytest.fixture
async def live_http() -> AsyncIterator[httpx.AsyncClient]:
    # The machine's proxy settings apply here: this is real traffic.
    async with httpx.AsyncClient(follow_redirects=True) as client:
        yield client


async def ask(http: httpx.AsyncClient, solver: str, text: str, lang: str = "en", **block: object) -> Answer:
    data = {"name": "live", "solvers": [solver], solver: {"timeout": 10, **block}}
    persona = Persona(parse_persona(data, source="<live>", default_name="live"), http=lambda: http)
    await persona.start()
    await persona.wait_ready()
    try:
        return await persona.answer(Query.from_text(text, lang=lang))
    finally:
        await persona.close()


async def test_wikipedia_en_and_pt(live_http: httpx.AsyncClient) -> None:
    answer = await ask(live_http, WIKI, "Who was Albert Einstein?")
    assert answer.solver == WIKI and "Einstein" in answer.text
    assert answer.sources[0].url.startswith("https://en.wikipedia.org/wiki/")
    answer = await ask(live_http, WIKI, "Quem foi Fernando Pessoa?", lang="pt")
    assert answer.solver == WIKI and "Pessoa" in answer.text
    assert answer.sources[0].url.startswith("https://pt.wikipedia.org/wiki/")


async def test_wikipedia_skips_disambiguation(live_http: httpx.AsyncClient) -> None:
    answer = await ask(live_http, WIKI, "what is Mercury")
    assert answer.solver == WIKI and "refer to" not in answer.text


async def test_wikipedia_special_characters(live_http: httpx.AsyncClient) -> None:
    answer = await ask(live_http, WIKI, "what is C#?")
    assert answer.solver == WIKI and "language" in answer.text.lower()


async def test_duckduckgo_abstract_and_birth_date(live_http: httpx.AsyncClient) -> None:
    answer = await ask(live_http, DDG, "who was Albert Einstein")
    assert answer.solver == DDG and "Einstein" in answer.text
    answer = await ask(live_http, DDG, "when was Albert Einstein born")
    assert answer.solver == DDG and "1879" in answer.text
    answer = await ask(live_http, DDG, "how old was Albert Einstein")
    assert answer.solver == DDG and "76" in answer.text


@pytest.mark.skipif(not os.environ.get(APPID_ENV), reason=f"needs {APPID_ENV}")
async def test_wolfram_alpha(live_http: httpx.AsyncClient) -> None:
    answer = await ask(live_http, WOLFRAM, "What is the boiling point of water in Celsius?")
    assert answer.solver == WOLFRAM and "100" in answer.text
    answer = await ask(live_http, WOLFRAM, "zxqv blorptangle")
    assert answer.solver is None and "understand" not in answer.text


async def test_wolfram_alpha_refuses_a_bad_appid(live_http: httpx.AsyncClient) -> None:
    answer = await ask(live_http, WOLFRAM, "What is the speed of light?", appid="NOT-A-REAL-APPID")
    assert answer.solver is None and "appid" not in answer.text.lower()
