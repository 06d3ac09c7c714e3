"""What MCP costs, both ways: a toolbox call from an LLM solver, and a persona tool called by an MCP client.

1. Toolboxes: the tiny MCP server of the tests (`tests/mcp_tools/toolbox_server.py`), over stdio and over
   streamable HTTP, opened as an LLM solver opens it (`solvers/toolboxes.py`): how long it takes to start, and one
   `lookup_order` call after another.
2. Personas as tools: a real `persona-server --mcp` with an offline persona (math, failure), called by the SDK's
   `Client` over `/mcp` and over stdio (`persona-server mcp`): one `ask_bench` call after another, beside the
   same question as a chat completion (the baseline: the same chain behind another protocol).

    python bench/mcp_tools.py [--calls 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port, start_server_process  # noqa: E402

TOOLBOX = ROOT / "tests" / "mcp_tools" / "toolbox_server.py"
PERSONA = {"name": "bench", "solvers": ["persona-solver-math", "ovos-solver-failure-plugin"]}


async def timed(calls: int, call: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    await call()  # warm
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        await call()
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return {"median_ms": round(statistics.median(times), 2), "p95_ms": round(times[int(len(times) * 0.95)], 2)}


def start_http_toolbox() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(TOOLBOX), "http", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    for _ in range(100):
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    return process, url


async def toolboxes(calls: int, tmp: Path) -> dict[str, Any]:
    from persona_server.solvers.toolboxes import Toolbox, ToolboxConfig

    http, url = start_http_toolbox()
    results: dict[str, Any] = {}
    try:
        for kind, config in (("stdio", {"command": sys.executable, "args": [str(TOOLBOX)]}), ("http", {"url": url})):
            box = Toolbox(ToolboxConfig.model_validate({"name": "orders", **config}), persona="bench")
            began = time.perf_counter()
            await box.open()
            start = round((time.perf_counter() - began) * 1000, 1)
            try:
                results[kind] = {"open_ms": start,
                                 **await timed(calls, lambda b=box: b.call("lookup_order", {"order_id": "A1"}, 15))}
            finally:
                await box.close()
    finally:
        http.terminate()
        http.wait(timeout=10)
    return results


async def persona_tools(calls: int, tmp: Path) -> dict[str, Any]:
    from mcp import Client, StdioServerParameters

    persona = tmp / "bench.json"
    persona.write_text(json.dumps(PERSONA))
    server = start_server_process("--persona", str(persona), "--mcp", log_path=tmp / "server.log")
    question = {"question": "what is 12 times 12"}
    results: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient() as http:
            body = {"model": "bench", "messages": [{"role": "user", "content": question["question"]}]}
            results["chat_completion_baseline"] = await timed(
                calls, lambda: http.post(f"{server.base_url}/v1/chat/completions", json=body))
        async with Client(f"{server.base_url}/mcp") as client:
            results["mcp_http"] = await timed(calls, lambda: client.call_tool("ask_bench", question))
    finally:
        server.stop()
    params = StdioServerParameters(command=sys.executable, args=["-m", "persona_server", "mcp", "--persona",
                                                                 str(persona)], cwd=str(ROOT))
    async with Client(params) as client:
        results["mcp_stdio"] = await timed(calls, lambda: client.call_tool("ask_bench", question))
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = {"calls": args.calls, "toolboxes": await toolboxes(args.calls, Path(tmp)),
                  "persona_tools": await persona_tools(args.calls, Path(tmp))}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
