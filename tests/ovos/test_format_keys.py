"""The newer persona keys as parsed (the e2e tests show them answering; these pin the edges)."""

from __future__ import annotations

import pytest

from persona_server.persona import PersonaError, parse_persona
from persona_server.persona_format import apply_system_prompt
from persona_server.query import Message, Query


def parse(data: dict) -> object:
    return parse_persona(data, source="<test>", default_name="t")


@pytest.mark.parametrize(("data", "problem"), [
    ({"handlers": "failure"}, "'solvers' must be a list"),
    ({"handlers": ["failure"], "memory_module": 3}, "'memory_module' must be"),
    ({"handlers": ["failure"], "memory_module": "ovos-agents-short-term-memory-plugin",
      "ovos-agents-short-term-memory-plugin": {"max_history": -1}}, "max_history"),
    ({"handlers": ["failure"], "system_prompt": ["x"]}, "'system_prompt' must be"),
    ({"handlers": ["failure"], "system_prompt_strategy": "merge"}, "'system_prompt_strategy' must be one of"),
    ({"handlers": ["failure"], "description": 5}, "'description' must be"),
])
def test_bad_values_name_the_key(data: dict, problem: str) -> None:
    with pytest.raises(PersonaError, match=problem):
        parse(data)


def test_a_bad_strategy_in_the_environment_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_SYSTEM_PROMPT_STRATEGY", "sometimes")
    with pytest.raises(PersonaError, match="PERSONA_SYSTEM_PROMPT_STRATEGY must be one of"):
        parse({"handlers": ["failure"]})
    assert parse({"handlers": ["failure"], "system_prompt_strategy": "replace"}).system_prompt_strategy == "replace"


def test_memory_module_settings() -> None:
    assert parse({"handlers": ["failure"], "memory": 4, "memory_module": None}).memory is None
    assert parse({"handlers": ["failure"], "memory": 4, "memory_module": False}).memory is None
    short = parse({"handlers": ["failure"], "memory_module": "ovos-agents-short-term-memory-plugin"})
    assert short.memory.turns == 5 and short.memory_plugin is None
    other = parse({"handlers": ["failure"], "memory": 4, "memory_module": "ovos-memory-plugin-recency"})
    assert other.memory is None and other.memory_plugin == "ovos-memory-plugin-recency"
    # The new keys are not solver blocks.
    assert set(parse({"handlers": ["failure"], "description": "d", "system_prompt": "p"}).blocks) == set()


@pytest.mark.parametrize(("strategy", "client", "expected"), [
    ("append", ["C1", "C2"], ["P", "C1", "C2"]),
    ("append", [], ["P"]),
    ("replace", ["C1"], ["C1"]),
    ("replace", [], ["P"]),
    ("ignore", ["C1"], ["P"]),
])
def test_system_prompt_strategies(strategy: str, client: list[str], expected: list[str]) -> None:
    query = Query(messages=[*(Message("system", c) for c in client), Message("user", "q")])
    apply_system_prompt(query, "P", strategy)  # type: ignore[arg-type]
    assert [m.content for m in query.messages if m.role == "system"] == expected
    assert query.messages[-1] == Message("user", "q")


def test_ignore_without_a_persona_prompt_drops_the_client_s() -> None:
    query = Query(messages=[Message("developer", "C"), Message("user", "q"), Message("assistant", "a"),
                            Message("user", "r")])
    apply_system_prompt(query, None, "ignore")
    assert [m.role for m in query.messages] == ["user", "assistant", "user"]
