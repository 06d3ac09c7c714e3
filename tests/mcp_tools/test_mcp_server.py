"""Personas as MCP tools: the `mcp` client SDK lists and calls them over /mcp (a real server with --mcp) and over
stdio (`persona-server mcp`)."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.conftest import ROOT, ServerProcess, cli_env, persona_args, start_server_process

KEY = "mcp-test-key-5521"
HELPER = {"name": "Helper Bot", "description": "Sums and words.",
          "solvers": ["persona-solver-math", "ovos-solver-wordnet-plugin", "ovos-solver-failure-plugin"]}
STRICT = {"name": "strict", "solvers": ["persona-solver-units"], "on_no_answer": "error"}


@pytest.fixture(scope="module")
def personas(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return persona_args(tmp_path_factory.mktemp("personas"), {"helper.json": HELPER, "strict.json": STRICT})


@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory: pytest.TempPathFactory, personas: list[str],
               isolated_cache: Path) -> Iterator[ServerProcess]:
    server = start_server_process(*personas, "--mcp", log_path=tmp_path_factory.mktemp("mcp") / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory, personas: list[str],
                 isolated_cache: Path) -> Iterator[ServerProcess]:
    server = start_server_process(*personas, "--api-key", KEY, log_path=tmp_path_factory.mktemp("k") / "server.log",
                                  env={"PERSONA_SERVER_MCP": "1"})  # the flag from the environment
    yield server
    server.stop()


@asynccontextmanager
async def keyed_client(url: str, key: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


async def refused_by_key(server: ServerProcess) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {KEY}"})).text
    line = next((line for line in text.splitlines()
                 if line.startswith('persona_server_refused_total{limit="api_key"}')), "x 0")
    return float(line.split()[-1])


async def check_tools(client: Client) -> None:
    """What every transport must show: the tools, and answers through the chains."""
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"ask_helper_bot", "ask_strict", "calculate", "define_word", "convert_units"}
    ask = tools["ask_helper_bot"]
    assert ask.input_schema["required"] == ["question"]
    assert set(ask.input_schema["properties"]) == {"question", "user"}
    assert "Helper Bot" in (ask.description or "") and "Sums and words." in (ask.description or "")
    assert tools["define_word"].input_schema["required"] == ["query"]

    result = await client.call_tool("ask_helper_bot", {"question": "what is 12 times 12", "user": "ann"})
    assert not result.is_error
    assert "144" in result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content == {"answer": result.content[0].text,  # type: ignore[union-attr]
                                         "solver": "persona-solver-math", "sources": []}

    word = await client.call_tool("define_word", {"query": "lighthouse"})
    assert "tower" in word.content[0].text  # type: ignore[union-attr]
    assert word.structured_content["solver"] == "ovos-solver-wordnet-plugin"
    converted = await client.call_tool("convert_units", {"query": "5 miles in km"})
    assert "8.0" in converted.content[0].text  # type: ignore[union-attr]

    # A persona that finds no answer, and bad arguments, are error results; an unknown tool is a protocol error.
    none = await client.call_tool("ask_strict", {"question": "tell me a joke"})
    assert none.is_error
    bad = await client.call_tool("ask_helper_bot", {"question": ""})
    assert bad.is_error and "question" in bad.content[0].text  # type: ignore[union-attr]
    with pytest.raises(MCPError, match="unknown tool"):
        await client.call_tool("ask_nobody", {"question": "hi"})


async def test_tools_over_http(mcp_server: ServerProcess) -> None:
    async with Client(f"{mcp_server.base_url}/mcp") as client:
        await check_tools(client)
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{mcp_server.base_url}/metrics")).text
    assert 'route="/mcp"' in metrics


async def test_tools_over_stdio(personas: list[str], tmp_path: Path, isolated_cache: Path) -> None:
    errlog = tmp_path / "stderr.log"
    params = StdioServerParameters(command=sys.executable, args=["-m", "persona_server", "mcp", *personas,
                                                                 "--log-level", "info"],
                                   env=cli_env({"PERSONA_SERVER_CACHE": str(isolated_cache)}), cwd=str(ROOT))
    with errlog.open("w") as stderr:
        async with Client(stdio_client(params, errlog=stderr)) as client:
            # The SDK's stdio transport reads stdout as protocol only: any stray line there would break the calls.
            await check_tools(client)
            (await client.list_tools())  # still speaking after the calls
    assert "no solver answered" in errlog.read_text()  # logs went to stderr (the ask_strict miss)


async def test_the_api_key_guards_mcp(keyed_server: ServerProcess) -> None:
    url = f"{keyed_server.base_url}/mcp"
    async with httpx.AsyncClient() as http:
        refused = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    before = await refused_by_key(keyed_server)
    with pytest.raises(BaseException, match="unhandled errors"):  # the SDK's task group, around an MCPError
        async with keyed_client(url, "wrong-key") as client:
            await client.list_tools()
    assert await refused_by_key(keyed_server) > before  # the server refused the SDK's requests for want of the key
    async with keyed_client(url, KEY) as client:
        result = await client.call_tool("calculate", {"query": "2 to the power of 10"})
        assert "1024" in result.content[0].text  # type: ignore[union-attr]


async def test_sigterm_with_a_session_open(personas: list[str], tmp_path: Path, isolated_cache: Path) -> None:
    # A graceful timeout longer than the wait allowed: a stream or session holding the shutdown up would show.
    server = start_server_process(*personas, "--mcp", "--graceful-timeout", "30", log_path=tmp_path / "server.log")
    try:
        async with Client(f"{server.base_url}/mcp") as client:
            await client.list_tools()
            server.process.send_signal(signal.SIGTERM)
            began = time.monotonic()
            assert server.process.wait(timeout=40) == 0
            assert time.monotonic() - began < 10
    except Exception:
        if server.process.poll() is None:
            raise
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log
    assert "Application shutdown complete" in log


def test_without_the_sdk(tmp_path: Path, personas: list[str], start_server: Any) -> None:
    """Without the `mcp` extra the server starts and answers; --mcp says what to install."""
    shadow = tmp_path / "no-mcp"
    (shadow / "mcp").mkdir(parents=True)
    (shadow / "mcp" / "__init__.py").write_text("raise ImportError('No module named mcp')\n")
    env = {"PYTHONPATH": str(shadow)}
    server = start_server(*personas, env=env)
    reply = httpx.post(f"{server.base_url}/v1/chat/completions",
                       json={"model": "helper bot", "messages": [{"role": "user", "content": "what is 2+2"}]})
    assert "4" in reply.json()["choices"][0]["message"]["content"]
    from tests.conftest import run_cli

    refused = run_cli(*personas, "--mcp", env=env)
    assert refused.returncode == 2
    assert "pip install 'persona-server[mcp]'" in refused.stderr
    stdio = run_cli("mcp", *personas, env=env)
    assert stdio.returncode == 2 and "persona-server[mcp]" in stdio.stderr
    llm = tmp_path / "llm.json"
    llm.write_text(json.dumps({"solvers": ["ovos-solver-openai-plugin"], "ovos-solver-openai-plugin": {
        "api_url": "http://127.0.0.1:9/v1", "toolboxes": {"orders": {"url": "http://127.0.0.1:9/mcp"}}}}))
    checked = run_cli("validate", str(llm), env=env)
    assert "toolbox 'orders' (http: http://127.0.0.1:9/mcp); not usable: MCP needs the mcp package" in checked.stdout
