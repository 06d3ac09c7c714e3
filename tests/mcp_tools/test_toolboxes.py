"""Toolboxes: an LLM persona calls the tools of MCP servers (stdio and streamable HTTP) in its tool loop."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from persona_server.query import Query
from tests.llm.upstream import Reply, Upstream

from .conftest import HttpToolbox, events, stdio_toolbox

OPENAI = "ovos-solver-openai-plugin"
FAILURE = "ovos-solver-failure-plugin"
FACT = "left the Tilburg depot on 3 March and arrives on Friday"


def llm_persona(upstream: Upstream, toolboxes: Any, **config: Any) -> dict[str, Any]:
    block = {"api_url": upstream.base_url, "model": "scripted-model", "timeout": 10, "toolboxes": toolboxes,
             **config}
    return {"name": "orders", "solvers": [OPENAI, FAILURE], OPENAI: block, FAILURE: {"answers": ["fallback"]}}


def ask_order(tool: str = "lookup_order", order: str = "A17") -> tuple[Reply, Reply]:
    """The upstream calls a tool, then answers with what the tool said."""
    return (Reply(tool_calls=[(tool, orjson.dumps({"order_id": order}).decode())]),
            Reply(tokens=["Here is what I found: "], echo_tool_results=True))


def tool_messages(upstream: Upstream) -> list[dict[str, Any]]:
    return [m for m in upstream.requests[-1].body["messages"] if m["role"] == "tool"]


async def test_a_stdio_toolbox_tool_is_called_and_its_result_used(upstream: Upstream, make_persona: Any,
                                                                   tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    upstream.script(*ask_order())
    persona = await make_persona(llm_persona(upstream, {"orders": stdio_toolbox(log)}))
    answer = await persona.answer(Query.from_text("Where is my order A17?"))
    assert answer.solver == OPENAI
    assert FACT in answer.text and "A17" in answer.text
    assert {"call": "lookup_order", "order_id": "A17"} in events(log)  # the tool itself got the call
    offered = upstream.requests[0].body["tools"]
    lookup = next(t["function"] for t in offered if t["function"]["name"] == "lookup_order")
    assert "Look up an order" in lookup["description"]
    assert lookup["parameters"]["properties"]["order_id"]["type"] == "string"
    assert lookup["parameters"]["required"] == ["order_id"]
    assert FACT in tool_messages(upstream)[0]["content"]


async def test_an_http_toolbox_in_the_list_form(upstream: Upstream, make_persona: Any,
                                                 http_toolbox: HttpToolbox) -> None:
    upstream.script(*ask_order(order="B9"))
    persona = await make_persona(llm_persona(upstream, [{"name": "orders", "url": http_toolbox.url}]))
    answer = await persona.answer(Query.from_text("Where is my order B9?"))
    assert FACT in answer.text and "B9" in answer.text
    assert {"call": "lookup_order", "order_id": "B9"} in events(http_toolbox.log)


async def test_an_http_toolbox_sends_its_headers(upstream: Upstream, make_persona: Any, http_toolbox: HttpToolbox,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    token = "Bearer tb-secret-6613"
    upstream.script(*ask_order(order="H1"))
    with caplog.at_level(logging.DEBUG):
        persona = await make_persona(llm_persona(upstream, {"orders": {"url": http_toolbox.url,
                                                                       "headers": {"Authorization": token}}}))
        answer = await persona.answer(Query.from_text("Where is my order H1?"))
    assert FACT in answer.text
    assert {"call": "lookup_order", "order_id": "H1", "authorization": token} in events(http_toolbox.log)
    assert "tb-secret-6613" not in caplog.text


async def test_a_tool_that_raises_comes_back_to_the_model_as_an_error(upstream: Upstream, make_persona: Any,
                                                                      http_toolbox: HttpToolbox) -> None:
    upstream.script(*ask_order("cancel_order"))
    persona = await make_persona(llm_persona(upstream, {"orders": {"url": http_toolbox.url}}))
    answer = await persona.answer(Query.from_text("Cancel order A17"))
    assert answer.solver == OPENAI
    (result,) = tool_messages(upstream)
    assert result["content"].startswith("Error")
    assert "read-only" in result["content"]
    assert "read-only" in answer.text  # the model read the error and answered anyway


async def test_a_tool_that_hangs_times_out_and_the_persona_still_answers(upstream: Upstream, make_persona: Any,
                                                                         http_toolbox: HttpToolbox) -> None:
    upstream.script(*ask_order("track_parcel"))
    persona = await make_persona(llm_persona(upstream, {"orders": {"url": http_toolbox.url}}, tool_timeout=1))
    began = time.monotonic()
    answer = await persona.answer(Query.from_text("Track order A17"))
    assert time.monotonic() - began < 8
    assert answer.solver == OPENAI
    (result,) = tool_messages(upstream)
    assert result["content"].startswith("Error:")
    assert "1 s" in result["content"]


async def test_a_toolbox_that_cannot_start_is_left_out(upstream: Upstream, make_persona: Any,
                                                       caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    secret = "orders-secret-4417"
    upstream.script(Reply(tokens=["No tools needed."]))
    boxes = {"broken": {"command": str(tmp_path / "no-such-program"), "env": {"ORDERS_TOKEN": secret}},
             "orders": stdio_toolbox(tmp_path / "events.jsonl", env={"ORDERS_TOKEN": secret})}
    with caplog.at_level(logging.INFO):
        persona = await make_persona(llm_persona(upstream, boxes))
        answer = await persona.answer(Query.from_text("hello"))
    assert answer.text == "No tools needed."
    assert [t["function"]["name"] for t in upstream.requests[0].body["tools"]] == [
        "lookup_order", "cancel_order", "track_parcel", "search_fixed_a"]
    assert "toolbox 'broken' (stdio: no-such-program) cannot start" in caplog.text
    assert secret not in caplog.text
    assert events(tmp_path / "events.jsonl")[0]["token"] == secret  # the env did reach the server


@pytest.mark.usefixtures("test_solvers")
async def test_persona_tool_names_stay_unique(upstream: Upstream, make_persona: Any, tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    upstream.script(Reply(tool_calls=[("orders_search_fixed_a", '{"query": "q1"}'),
                                      ("search_fixed_a", '{"query": "q2"}')]),
                    Reply(echo_tool_results=True))
    data = llm_persona(upstream, {"orders": stdio_toolbox(log)}, tool_solvers=["fixed-a"]) | {
        "fixed-a": {"text": "the solver's answer"}}
    persona = await make_persona(data)
    answer = await persona.answer(Query.from_text("q"))
    names = [t["function"]["name"] for t in upstream.requests[0].body["tools"]]
    assert names == ["search_fixed_a", "lookup_order", "cancel_order", "track_parcel", "orders_search_fixed_a"]
    assert "the toolbox's answer to q1" in answer.text and "the solver's answer" in answer.text
    assert {"call": "search_fixed_a", "query": "q1"} in events(log)


def pid_gone(pid: int) -> bool:
    """The process has ended (a zombie nobody reaped counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")


def test_a_real_server_uses_a_stdio_toolbox_and_stops_it(upstream: Upstream, tmp_path: Path,
                                                          start_server: Any) -> None:
    import openai

    log = tmp_path / "events.jsonl"
    upstream.script(*ask_order(order="C3"))
    persona = tmp_path / "orders.json"
    persona.write_text(orjson.dumps(llm_persona(upstream, {"orders": stdio_toolbox(log)})).decode())
    server = start_server("--persona", str(persona))
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused")
    reply = client.chat.completions.create(model="orders", messages=[{"role": "user", "content": "Where is C3?"}])
    assert FACT in (reply.choices[0].message.content or "")
    assert {"call": "lookup_order", "order_id": "C3"} in events(log)
    pid = events(log)[0]["start"]
    assert not pid_gone(pid)
    server.stop()  # SIGTERM: the solver closes its toolbox, which ends the MCP server's process
    deadline = time.monotonic() + 10
    while not pid_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_gone(pid), "the stdio toolbox outlived the server"
    assert server.process.returncode == 0


def test_validate_lists_toolboxes(tmp_path: Path, upstream: Upstream) -> None:
    from tests.conftest import run_cli

    persona = tmp_path / "orders.json"
    boxes = {"orders": stdio_toolbox(tmp_path / "never.jsonl", env={"ORDERS_TOKEN": "tok-8812-secret"}),
             "search": {"url": "http://user:pw-secret-77@127.0.0.1:9/mcp"}}
    persona.write_text(orjson.dumps(llm_persona(upstream, boxes)).decode())
    result = run_cli("validate", str(persona))
    assert result.returncode == 0, result.stdout
    assert "toolbox 'orders' (stdio: python" in result.stdout
    assert "toolbox 'search' (http: http://127.0.0.1:9/mcp)" in result.stdout
    assert "secret" not in result.stdout
    assert not (tmp_path / "never.jsonl").exists()  # validation starts nothing
    broken = tmp_path / "broken.json"
    broken.write_text(orjson.dumps(llm_persona(upstream, {"x": {"args": ["a"]}})).decode())
    result = run_cli("validate", str(broken))
    assert result.returncode == 1
    assert "either 'command'" in result.stdout
