"""Everyday questions (issue 16) through a real server and the real clients, and through `persona-server ask`:
arithmetic, unit conversions, the clock (with "now" and the server's zone fixed), and the dictionary's senses."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.conftest import ServerProcess, run_cli, start_server_process
from tests.e2e.test_errors import assert_openai_error

MATH = "persona-solver-math"
UNITS = "persona-solver-units"
CLOCK = "persona-solver-clock"
WORDNET = "ovos-solver-wordnet-plugin"
FAILURE = "ovos-solver-failure-plugin"

# A Tuesday morning in Lisbon (UTC+0 in December).
FIXED = {"TZ": "Europe/Lisbon", "PERSONA_SERVER_FAKE_NOW": "2026-12-01T09:30:00"}

ANSWERS: list[tuple[str, str, str]] = [
    ("what is 2+2", MATH, "2 plus 2 is 4."),
    ("what is two plus two", MATH, "2 plus 2 is 4."),
    ("twelve times seven", MATH, "12 times 7 is 84."),
    ("what is a hundred divided by eight", MATH, "100 divided by 8 is 12.5."),
    ("what is 15% of 80", MATH, "15% of 80 is 12."),
    ("what percent of 80 is 12", MATH, "12 is 15% of 80."),
    ("what is 2 to the power of 10", MATH, "2 to the power of 10 is 1024."),
    ("what is the square root of 144", MATH, "The square root of 144 is 12."),
    ("what is (3 + 4) * 2", MATH, "(3 plus 4) times 2 is 14."),
    ("what is 1/4 plus 0.5", MATH, "1 divided by 4 plus 0.5 is 0.75."),
    ("what is 5 divided by 0", MATH, "You can't divide by zero: that has no answer."),
    ("how many feet in a mile", UNITS, "There are 5280 feet in a mile."),
    ("convert 30 celsius to fahrenheit", UNITS, "30 degrees Celsius is 86 degrees Fahrenheit."),
    ("100 km in miles", UNITS, "100 kilometers is about 62.14 miles."),
    ("how many grams in a pound", UNITS, "There are about 453.59 grams in a pound."),
    ("what is 5 miles in km", UNITS, "5 miles is about 8.05 kilometers."),
    ("what time is it", CLOCK, "It's 9:30 AM."),
    ("what day is it today", CLOCK, "Today is Tuesday, December 1, 2026."),
    ("what time is it in Tokyo", CLOCK, "In Tokyo it's 6:30 PM."),
    ("what time is it in Portugal", CLOCK, "In Portugal it's 9:30 AM."),
    ("what's the date tomorrow", CLOCK, "Tomorrow is Wednesday, December 2, 2026."),
    ("what day is Christmas", CLOCK, "Christmas is on Friday, December 25, 2026."),
    ("how many days until new year", CLOCK, "There are 31 days until New Year's Day."),
    ("define love", WORDNET, "Love means a strong positive emotion of regard and affection."),
    ("what is a prime number", WORDNET, "A prime number is an integer that has no integral factors but itself and 1."),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server_process(log_path=tmp_path_factory.mktemp("everyday") / "server.log", env=FIXED)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)


def chat(client: openai.OpenAI, question: str, **extra: object) -> tuple[str, str | None]:
    completion = client.chat.completions.create(
        model="", messages=[{"role": "user", "content": question}], extra_body=extra or None,
    )
    return completion.choices[0].message.content or "", (completion.model_extra or {}).get("solver")


@pytest.mark.parametrize(("question", "solver", "answer"), ANSWERS)
def test_openai_client(client: openai.OpenAI, question: str, solver: str, answer: str) -> None:
    assert chat(client, question) == (answer, solver)


def test_refusals_leave_the_question_to_the_next_solvers(client: openai.OpenAI) -> None:
    for question in ("what is 2 to the power of 1000000", "what is 9999999 factorial",
                     "what is " + "(" * 40 + "1" + ")" * 40 + " + 1"):
        text, solver = chat(client, question)
        assert solver == FAILURE, (question, text)


def test_units_extension_picks_the_target(client: openai.OpenAI) -> None:
    assert chat(client, "how tall is 180 cm", units="imperial") == (
        "180 centimeters is about 5 feet 11 inches.", UNITS)
    assert chat(client, "how tall is 6 feet", units="metric") == ("6 feet is about 1.83 meters.", UNITS)


def test_timezone_extension(client: openai.OpenAI, server: ServerProcess) -> None:
    assert chat(client, "what time is it", timezone="America/New_York") == ("It's 4:30 AM.", CLOCK)
    reply = httpx.post(server.base_url + "/v1/responses", json={
        "model": "", "input": "what time is it", "timezone": "Asia/Kolkata"}).json()
    assert reply["output"][0]["content"][0]["text"] == "It's 3:00 PM."


def test_ollama_client_portuguese_and_timezone(server: ServerProcess) -> None:
    client = ollama.Client(host=server.base_url)

    def ask(question: str, **extra: object) -> tuple[str, str | None]:
        response = httpx.post(server.base_url + "/api/chat", json={
            "model": "default", "stream": False, "messages": [{"role": "user", "content": question}], **extra})
        body = response.json()
        return body["message"]["content"], body["solver"]

    reply = client.chat(model="default", messages=[{"role": "user", "content": "how many feet in a mile"}])
    assert reply.message.content == "There are 5280 feet in a mile."
    assert ask("que horas são em Tóquio", lang="pt-PT") == ("Em Tóquio são 18:30.", CLOCK)
    assert ask("que dia é hoje", lang="pt-BR", timezone="America/Sao_Paulo") == (
        "Hoje é terça-feira, 1 de dezembro de 2026.", CLOCK)
    assert ask("quantos dias faltam para o Natal", lang="pt") == ("Faltam 24 dias para o Natal.", CLOCK)


def test_unknown_timezones_are_refused_in_each_protocols_format(server: ServerProcess) -> None:
    body = {"messages": [{"role": "user", "content": "what time is it"}], "timezone": "Mars/Olympus"}
    error = assert_openai_error(httpx.post(server.base_url + "/v1/chat/completions", json=body), 400, "timezone")
    assert "time zone" in error["message"]
    response = httpx.post(server.base_url + "/v1/responses",
                          json={"input": "what time is it", "timezone": "../../etc/passwd"})
    assert_openai_error(response, 400, "timezone")
    response = httpx.post(server.base_url + "/api/chat", json={"model": "default", "timezone": 5, **body})
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    response = httpx.post(server.base_url + "/api/generate",
                          json={"model": "default", "prompt": "what time is it", "timezone": "Nowhere/City"})
    assert response.status_code == 400
    assert "time zone" in response.json()["error"]


def test_persona_timezone_block(start_server: Callable[..., ServerProcess],
                                write_persona: Callable[..., Path]) -> None:
    tokyo = write_persona({"name": "Tokyo", "solvers": ["clock", "failure"], "clock": {"timezone": "Asia/Tokyo"}})
    broken = write_persona({"name": "Broken", "solvers": ["clock", "failure"], "clock": {"timezone": "Nowhere"}})
    server = start_server("--persona", str(tokyo), "--persona", str(broken), env=FIXED)
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    reply = client.chat.completions.create(model="Tokyo", messages=[{"role": "user", "content": "what time is it"}])
    assert reply.choices[0].message.content == "It's 6:30 PM."
    overridden = client.chat.completions.create(
        model="Tokyo", messages=[{"role": "user", "content": "what time is it"}], extra_body={"timezone": "UTC"})
    assert overridden.choices[0].message.content == "It's 9:30 AM."
    # A zone that does not exist takes out the clock, not the persona.
    status = httpx.get(server.base_url + "/status").json()
    states = {p["name"]: p["solvers"] for p in status["personas"]}
    assert states["Broken"][0]["state"] == "error"
    assert "time zone" in states["Broken"][0]["error"]
    reply = client.chat.completions.create(model="Broken", messages=[{"role": "user", "content": "what time is it"}])
    assert reply.model_extra["solver"] == "failure"  # named as the persona names it


@pytest.mark.parametrize(("question", "solver", "answer"), [
    ANSWERS[0], ANSWERS[4], ANSWERS[10], ANSWERS[12], ANSWERS[18], ANSWERS[23],
])
def test_cli_ask(question: str, solver: str, answer: str) -> None:
    result = run_cli("ask", "--json", question, env=FIXED)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) | {"sources": []} == {
        "answer": answer, "persona": "default", "solver": solver, "sources": []}


def test_cli_ask_imperial() -> None:
    result = run_cli("ask", "--units", "imperial", "how tall is 180 cm", env=FIXED)
    assert result.stdout.strip() == "180 centimeters is about 5 feet 11 inches."
