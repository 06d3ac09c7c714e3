"""The Wolfram|Alpha solver against replayed Spoken Results / Short Answers API replies."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from persona_server.persona import Persona
from persona_server.query import Answer, Query, Source
from persona_server.solvers.wolfram import APPID_ENV, WolframAlphaSolver
from tests.replay import ReplayServer, Reply

MakePersona = Callable[[dict[str, Any]], Awaitable[Persona]]
WOLFRAM = "ovos-solver-plugin-wolfram-alpha"
DONT_KNOW = "Beats me."
APPID = "TEST7-SECRETAPPID42"
SPOKEN = "/v1/spoken"
SHORT = "/v1/result"
NOT_UNDERSTOOD = "Wolfram|Alpha did not understand your input"


@pytest.fixture(autouse=True)
def no_appid_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(APPID_ENV, raising=False)


def persona_data(base_url: str, **options: Any) -> dict[str, Any]:
    return {
        "name": "wolfram",
        "solvers": [WOLFRAM, "ovos-solver-failure-plugin"],
        WOLFRAM: {"appid": APPID, "base_url": base_url, **options},
        "ovos-solver-failure-plugin": {"answers": [DONT_KNOW]},
    }


async def ask(persona: Persona, text: str, lang: str = "en", units: str = "metric") -> Answer:
    return await persona.answer(Query.from_text(text, lang=lang, units=units))


async def test_spoken_result(replay: ReplayServer, make_persona: MakePersona) -> None:
    replay.add(SPOKEN, text="The distance from Earth to the Moon is about 384400 kilometers")
    persona = await make_persona(persona_data(replay.url))
    answer = await ask(persona, "How far away is the Moon?")
    assert answer.solver == WOLFRAM
    assert answer.text == "The distance from Earth to the Moon is about 384400 kilometers"
    assert answer.sources == [
        Source("Wolfram|Alpha", "https://www.wolframalpha.com/input?i=How%20far%20away%20is%20the%20Moon%3F")
    ]
    [request] = replay.received()
    assert request.path == SPOKEN
    assert request.param("i") == "How far away is the Moon?"
    assert request.param("appid") == APPID and request.param("units") == "metric"
    assert request.headers["user-agent"].startswith("persona-server/")


async def test_falls_back_to_short_answers(replay: ReplayServer, make_persona: MakePersona) -> None:
    replay.add(SPOKEN, status=501, text="No spoken result available")
    replay.add(SHORT, text="384400 km")
    persona = await make_persona(persona_data(replay.url))
    assert (await ask(persona, "distance to the moon")).text == "384400 km"
    assert [r.path for r in replay.received()] == [SPOKEN, SHORT]


@pytest.mark.parametrize(
    ("spoken", "short"),
    [
        (Reply(status=501, text=NOT_UNDERSTOOD), Reply(status=501, text=NOT_UNDERSTOOD)),
        (Reply(status=501, text="No spoken result available"), Reply(status=501, text="No short answer available")),
        # Error texts sent with 200 are not answers either.
        (Reply(text="Wolfram Alpha did not understand your input"), Reply(text="No short answer available")),
        (Reply(status=501, text=""), Reply(text="")),
    ],
)
async def test_error_bodies_are_never_spoken(
    replay: ReplayServer, make_persona: MakePersona, spoken: Reply, short: Reply
) -> None:
    replay.add(SPOKEN, spoken)
    replay.add(SHORT, short)
    persona = await make_persona(persona_data(replay.url))
    answer = await ask(persona, "flibber the jabberwock")
    assert answer.text == DONT_KNOW and answer.solver == "ovos-solver-failure-plugin"


@pytest.mark.parametrize(
    "reply",
    [Reply(status=403, text="Error 1: Invalid appid"), Reply(status=403, text="Error 2: Appid missing"),
     Reply(text="Error 1: Invalid appid"), Reply(status=500, text="Internal Server Error"),
     Reply(status=400, text="Error 1: Invalid appid")],
)
async def test_refused_appid_or_server_error(
    replay: ReplayServer, make_persona: MakePersona, reply: Reply, caplog: pytest.LogCaptureFixture
) -> None:
    replay.add(SPOKEN, reply)
    replay.add(SHORT, text="should not be asked after a refusal")
    persona = await make_persona(persona_data(replay.url))
    with caplog.at_level(logging.DEBUG):
        answer = await ask(persona, "what is the speed of light")
        assert answer.text == DONT_KNOW
        # Not cached: the next question asks again.
        await ask(persona, "what is the speed of light")
    assert [r.path for r in replay.received()] == [SPOKEN, SPOKEN]
    assert "no answer from Wolfram|Alpha" in caplog.text
    assert APPID not in caplog.text


async def test_units_from_request_or_config(replay: ReplayServer, make_persona: MakePersona) -> None:
    replay.add(SPOKEN, text="It is about 238900 miles", query={"units": "imperial"})
    replay.add(SPOKEN, text="It is about 384400 kilometers", query={"units": "metric"})
    persona = await make_persona(persona_data(replay.url))
    assert (await ask(persona, "how far is the moon", units="imperial")).text == "It is about 238900 miles"
    assert (await ask(persona, "how far is the moon", units="metric")).text == "It is about 384400 kilometers"
    persona = await make_persona(persona_data(replay.url, units="imperial"))
    assert (await ask(persona, "how far is the moon", units="metric")).text == "It is about 238900 miles"


async def test_encoding_of_the_question(replay: ReplayServer, make_persona: MakePersona) -> None:
    question = "what is 2+2 & 3#4? 50% of café"
    replay.add(SPOKEN, text="The answer is something", query={"i": question})
    persona = await make_persona(persona_data(replay.url))
    assert (await ask(persona, question)).text == "The answer is something"
    raw = replay.received()[0].raw_query
    for encoded in ("2%2B2", "%26", "3%234", "%3F", "50%25", "caf%C3%A9"):
        assert encoded in raw


async def test_languages_option(replay: ReplayServer, make_persona: MakePersona) -> None:
    replay.add(SPOKEN, text="Lisbon is the capital of Portugal")
    persona = await make_persona(persona_data(replay.url))
    assert (await ask(persona, "qual é a capital de Portugal", lang="pt")).text == DONT_KNOW
    assert replay.received() == []  # English-only by default: a Portuguese asker is not answered in English
    persona = await make_persona(persona_data(replay.url, languages=None))
    assert (await ask(persona, "qual é a capital de Portugal", lang="pt")).text == "Lisbon is the capital of Portugal"


async def test_cache_hang_and_offline(replay: ReplayServer, make_persona: MakePersona) -> None:
    replay.add(SPOKEN, text="Water boils at 100 degrees Celsius at sea level")
    persona = await make_persona(persona_data(replay.url))
    await ask(persona, "boiling point of water")
    await ask(persona, "boiling point of water")
    assert len(replay.received()) == 1

    replay.add(SPOKEN, Reply(hang=True), query={"i": "hang please"})
    persona = await make_persona(persona_data(replay.url, timeout=0.4))
    started = time.monotonic()
    assert (await ask(persona, "hang please")).text == DONT_KNOW
    assert time.monotonic() - started < 1.2

    persona = await make_persona(persona_data("http://127.0.0.1:1"))
    started = time.monotonic()
    assert (await ask(persona, "boiling point of water")).text == DONT_KNOW
    assert time.monotonic() - started < 1


async def test_without_appid_the_solver_cannot_start(
    make_persona: MakePersona, caplog: pytest.LogCaptureFixture
) -> None:
    data = persona_data("http://127.0.0.1:1")
    del data[WOLFRAM]["appid"]
    persona = await make_persona(data)
    status = persona.status()["solvers"][0]
    assert status["state"] == "error" and "appid" in status["error"]
    assert "developer.wolframalpha.com" in status["error"]
    # The rest of the chain serves.
    assert (await ask(persona, "what is the speed of light")).text == DONT_KNOW
    assert "cannot start" in caplog.text


async def test_appid_from_the_environment(
    replay: ReplayServer, make_persona: MakePersona, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(APPID_ENV, "ENVAPPID-123456")
    replay.add(SPOKEN, text="Forty two")
    data = persona_data(replay.url)
    del data[WOLFRAM]["appid"]
    persona = await make_persona(data)
    assert (await ask(persona, "answer to everything")).text == "Forty two"
    assert replay.received()[0].param("appid") == "ENVAPPID-123456"


async def test_appid_never_in_errors_or_logs(
    replay: ReplayServer, make_persona: MakePersona, caplog: pytest.LogCaptureFixture
) -> None:
    # A bad config value next to the appid: the error names the field, never the values.
    data = persona_data(replay.url, timeout="soon")
    persona = await make_persona(data)
    error = persona.status()["solvers"][0]["error"]
    assert "timeout" in error and APPID not in error
    # Failures of every kind log without the appid (the URL carries it).
    replay.add(SPOKEN, Reply(hang=True))
    persona = await make_persona(persona_data(replay.url, timeout=0.3))
    with caplog.at_level(logging.DEBUG):
        await ask(persona, "slow question")
    persona = await make_persona(persona_data("http://127.0.0.1:1"))
    with caplog.at_level(logging.DEBUG):
        await ask(persona, "offline question")
    assert "no answer from Wolfram|Alpha" in caplog.text
    assert APPID not in caplog.text
    # Neither repr nor a dump of the options shows it.
    solver = persona.slots[0].solver
    assert isinstance(solver, WolframAlphaSolver)
    assert APPID not in repr(solver.options) and APPID not in str(solver.options.model_dump())
