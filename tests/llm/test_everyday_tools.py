"""The math, units and clock solvers as LLM tools (`calculate`, `convert_units`, `current_time`), against the
scripted upstream: the names and arguments it is offered, and the answers its calls get."""

from __future__ import annotations

import pytest

from persona_server.query import Query
from persona_server.timezones import FAKE_NOW_ENV

from .conftest import MakePersona
from .upstream import Reply, Upstream

OPENAI = "ovos-solver-openai-plugin"


async def test_tools(upstream: Upstream, make_persona: MakePersona, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAKE_NOW_ENV, "2026-12-01T09:30:00+00:00")
    upstream.script(
        Reply(tool_calls=[("calculate", '{"query": "15% of 80"}'),
                          ("convert_units", '{"query": "30 celsius to fahrenheit"}'),
                          ("current_time", '{"query": "what time is it in Tokyo"}')]),
        Reply(tokens=["Done", "."]),
    )
    persona = await make_persona({
        "name": "tools", "solvers": [OPENAI],
        OPENAI: {"api_url": upstream.base_url, "key": "sk-x", "model": "m", "timeout": 5,
                 "tool_solvers": ["math", "units", "clock"]},
    })
    answer = await persona.answer(Query.from_text("Tell me some facts"))
    assert answer.text == "Done."
    first, second = (r.body for r in upstream.requests)
    tools = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert list(tools) == ["calculate", "convert_units", "current_time"]
    assert "15% of 80" in tools["calculate"]["parameters"]["properties"]["query"]["description"]
    results = [m["content"] for m in second["messages"] if m["role"] == "tool"]
    assert results == ["15% of 80 is 12.", "30 degrees Celsius is 86 degrees Fahrenheit.", "In Tokyo it's 6:30 PM."]
