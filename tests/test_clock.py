"""The clock solver with a fixed "now": times, dates, holidays, places, zones, English and Portuguese."""

from __future__ import annotations

import pytest

from persona_server.query import Query
from persona_server.solvers.base import SolverContext
from persona_server.solvers.clock import ClockOptions, ClockSolver
from persona_server.timezones import FAKE_NOW_ENV, zone

NOW = "2026-12-01T09:30:00+00:00"  # a Tuesday; Lisbon is on UTC in December


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAKE_NOW_ENV, NOW)
    monkeypatch.setenv("TZ", "Europe/Lisbon")


def solver(**options: object) -> ClockSolver:
    return ClockSolver(ClockOptions(**options), SolverContext(persona="t", http=lambda: None))  # type: ignore[arg-type,return-value]


async def ask(question: str, lang: str = "en", timezone: str | None = None, **options: object) -> str | None:
    return await solver(**options).answer(Query.from_text(question, lang=lang, timezone=timezone))


@pytest.mark.parametrize(("question", "expected"), [
    ("what time is it", "It's 9:30 AM."),
    ("What's the time?", "It's 9:30 AM."),
    ("tell me the time please", "It's 9:30 AM."),
    ("what time is it in Tokyo", "In Tokyo it's 6:30 PM."),
    ("what time is it in Portugal", "In Portugal it's 9:30 AM."),
    ("what's the time in New York", "In New York it's 4:30 AM."),
    ("what time is it in the USA", "In the USA it's 4:30 AM."),
    ("what time is it in Auckland", "In Auckland it's 10:30 PM."),
    ("what time is it in India", "In India it's 3:00 PM."),  # the English spelling, not "Índia"
    ("what day is it today", "Today is Tuesday, December 1, 2026."),
    ("what is the date today", "Today is Tuesday, December 1, 2026."),
    ("what's the date tomorrow", "Tomorrow is Wednesday, December 2, 2026."),
    ("what was the date yesterday", "Yesterday was Monday, November 30, 2026."),
    ("what is the day after tomorrow", "The day after tomorrow is Thursday, December 3, 2026."),
    ("what day is it in Tokyo", "In Tokyo it's Tuesday, December 1, 2026."),
    ("what day is Christmas", "Christmas is on Friday, December 25, 2026."),
    ("how many days until new year", "There are 31 days until New Year's Day."),
    ("how many days until christmas", "There are 24 days until Christmas."),
    ("when is halloween", "Halloween is on Sunday, October 31, 2027."),
    ("what day is march 3", "March 3, 2027 is a Wednesday."),
    ("what year is it", "It's 2026."),
    ("what day of the week is christmas", "Christmas is on Friday, December 25, 2026."),
    ("is it monday today", "No, today is Tuesday."),
    ("is today Tuesday?", "Yes, today is Tuesday."),
    ("what month is it", "It's December."),
])
async def test_english(question: str, expected: str) -> None:
    assert await ask(question) == expected


@pytest.mark.parametrize(("question", "expected"), [
    ("que horas são", "São 9:30."),
    ("Que horas são em Tóquio?", "Em Tóquio são 18:30."),
    ("que horas são no Brasil", "No Brasil são 6:30."),
    ("que dia é hoje", "Hoje é terça-feira, 1 de dezembro de 2026."),
    ("qual é a data de amanhã", "Amanhã é quarta-feira, 2 de dezembro de 2026."),
    ("que dia foi anteontem", "Anteontem foi domingo, 29 de novembro de 2026."),
    ("quantos dias faltam para o Natal", "Faltam 24 dias para o Natal."),
    ("que dia é o Natal", "O Natal é sexta-feira, 25 de dezembro de 2026."),
    ("hoje é segunda?", "Não, hoje é terça-feira."),
    ("hoje é terça-feira", "Sim, hoje é terça-feira."),
])
async def test_portuguese(question: str, expected: str) -> None:
    assert await ask(question, lang="pt-PT") == expected


async def test_the_request_zone_beats_the_persona_zone_which_beats_the_servers() -> None:
    assert await ask("what time is it") == "It's 9:30 AM."  # TZ=Europe/Lisbon
    clock = solver(timezone="Asia/Kolkata")
    assert await clock.answer(Query.from_text("what time is it")) == "It's 3:00 PM."
    query = Query.from_text("what time is it", timezone="America/Los_Angeles")
    assert await clock.answer(query) == "It's 1:30 AM."


def test_a_persona_zone_must_exist() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        ClockOptions(timezone="Mars/Olympus_Mons")
    with pytest.raises(ValueError):
        zone("../../etc/passwd")


@pytest.mark.parametrize("question", [
    "what is a prime number", "what time is it in Narnia", "how many days until my birthday", "what is love",
    "what is 2+2", "what is the time of the race", "what day is february 30", "is it birthday today", "what is time",
])
async def test_other_questions_get_no_answer(question: str) -> None:
    assert await ask(question) is None
