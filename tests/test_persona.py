"""Persona files: the OpenVoiceOS format, loaded unchanged; broken files and broken solvers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from persona_server import secrets
from persona_server.persona import Persona, PersonaError, load_persona_file, parse_persona
from persona_server.query import Query
from tests.conftest import EXAMPLES


def make_persona(data: dict) -> Persona:
    spec = parse_persona(data, source="test.json", default_name="test")
    return Persona(spec, http=lambda: httpx.AsyncClient())


def test_rivescript_bot_loads_unchanged_and_is_named_after_its_file() -> None:
    spec = load_persona_file(EXAMPLES / "rivescript_bot.json")
    assert spec.name == "rivescript_bot"
    assert spec.solvers == ["ovos-solver-rivescript-plugin"]
    # gender, attitudes and "//" are accepted as they are; they are not solver blocks we act on.
    assert set(spec.blocks) == {"gender", "attitudes", "//"}


def test_old_school_bot_loads_with_its_wolfram_block_found_under_the_alias() -> None:
    spec = load_persona_file(EXAMPLES / "OldSchoolBot.json")
    assert spec.name == "OldSchoolBot"
    assert spec.solvers[0] == "ovos-solver-wikipedia-plugin"
    assert spec.solvers[-1] == "ovos-solver-failure-plugin"
    assert spec.block("ovos-solver-plugin-wolfram-alpha") == {"appid": "Y7353-9HQAAL8KKA"}
    assert spec.block("ovos-solver-wolfram-alpha-plugin") == {"appid": "Y7353-9HQAAL8KKA"}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"name": "x"}', "missing 'solvers'"),
        ('{"solvers": "ovos-solver-failure-plugin"}', "'solvers' must be a list"),
        ('{"solvers": [1, 2]}', "'solvers' must be a list"),
        ('{"solvers": []}', "'solvers' is empty"),
        ('{"name": 5, "solvers": ["a"]}', "'name' must be a non-empty string"),
    ],
)
def test_broken_files_name_the_file_and_the_problem(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(PersonaError) as info:
        load_persona_file(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file() -> None:
    with pytest.raises(PersonaError, match="no such file"):
        load_persona_file("/nonexistent/persona.json")


async def test_unknown_and_misconfigured_solvers_do_not_take_the_persona_down() -> None:
    persona = make_persona({
        "solvers": ["no-such-solver", "ovos-solver-failure-plugin", "failure"],
        "ovos-solver-failure-plugin": {"answers": "not a list"},
        "failure": {"answers": ["still here"]},
    })
    await persona.start()
    await persona.wait_ready()
    states = [(s["name"], s["state"]) for s in persona.status()["solvers"]]
    assert states == [("no-such-solver", "error"), ("ovos-solver-failure-plugin", "error"), ("failure", "ready")]
    assert "unknown solver" in persona.status()["solvers"][0]["error"]
    assert "answers" in persona.status()["solvers"][1]["error"]
    answer = await persona.answer(Query.from_text("anything"))
    assert answer.text == "still here"
    assert answer.solver == "failure"


async def test_disabled_solver_is_skipped() -> None:
    persona = make_persona({
        "solvers": ["failure", "ovos-solver-failure-plugin"],
        "failure": {"enabled": False, "answers": ["disabled one"]},
        "ovos-solver-failure-plugin": {"answers": ["enabled one"]},
    })
    await persona.start()
    assert (await persona.answer(Query.from_text("q"))).text == "enabled one"
    assert persona.status()["solvers"][0]["state"] == "disabled"


async def test_bad_timeout_is_a_solver_config_error() -> None:
    persona = make_persona({"solvers": ["failure"], "failure": {"timeout": -1}})
    assert persona.slots[0].state == "error"
    assert "timeout" in (persona.slots[0].error or "")


async def test_config_errors_never_echo_config_values(caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-test-1234567890abcdef"
    with caplog.at_level(logging.WARNING):
        persona = make_persona({"solvers": ["failure"], "failure": {"key": secret, "answers": {"x": secret}}})
    assert secret not in json.dumps(persona.status())
    assert secret not in caplog.text
    assert secrets.redact(f"url?appid={secret}") == "url?appid=***"


@pytest.mark.parametrize("lang", ["en", "pt", "es", "fr", "de", "pt-BR", "de_DE"])
async def test_failure_solver_speaks_the_language_and_never_404(lang: str) -> None:
    from persona_server.solvers.failure import dialogs

    persona = make_persona({"solvers": ["ovos-solver-failure-plugin"]})
    await persona.start()
    answers = {(await persona.answer(Query.from_text("?", lang=lang))).text for _ in range(20)}
    code = lang.replace("_", "-").split("-")[0]
    assert answers <= set(dialogs(code))
    assert len(answers) > 1
    assert not any("404" in a for a in answers)


async def test_failure_solver_unknown_language_falls_back_to_english() -> None:
    from persona_server.solvers.failure import dialogs

    persona = make_persona({"solvers": ["ovos-solver-failure-plugin"]})
    await persona.start()
    answer = await persona.answer(Query.from_text("?", lang="xx"))
    assert answer.text in dialogs("en")


def test_on_no_answer_is_a_persona_setting() -> None:
    spec = parse_persona({"solvers": ["ovos-solver-failure-plugin"], "on_no_answer": "error"}, source="<t>",
                         default_name="t")
    assert spec.on_no_answer == "error" and "on_no_answer" not in spec.blocks
    assert parse_persona({"solvers": ["x"]}, source="<t>", default_name="t").on_no_answer == "apology"
    with pytest.raises(PersonaError, match="on_no_answer"):
        parse_persona({"solvers": ["x"], "on_no_answer": "shrug"}, source="<t>", default_name="t")


def test_url_credentials_are_split_off_and_registered() -> None:
    assert secrets.split_url_credentials("http://ann:pa%40ss@host:8/v1") == ("http://host:8/v1", "ann", "pa@ss")
    assert secrets.split_url_credentials("https://tok3n-abc@host/v1") == ("https://host/v1", "tok3n-abc", None)
    assert secrets.split_url_credentials("http://host/v1?a=b@c") == ("http://host/v1?a=b@c", None, None)
    parse_persona({"solvers": ["x"], "x": {"base_url": "http://zed-user:zed-pw-123@h/"}}, source="<t>",
                  default_name="t")
    basic = secrets.basic_credentials("zed-user", "zed-pw-123")
    assert secrets.redact(f"zed-user:zed-pw-123 Basic {basic} zed-pw-123") == "*** Basic *** ***"
