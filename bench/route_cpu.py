"""CPU time per non-streamed request of each protocol's route, in process: the app called as ASGI, no sockets.

The same canned reply (a failure solver with one fixed line) through each route; the figure is microseconds of
process CPU per request (best of 5 rounds) and its ratio to the OpenAI chat route. Being CPU time in one
process, it stays comparable on a machine loaded by other work, where wall-clock load tests (`throughput.py`)
are not; it leaves out the HTTP server's own cost, which is the same for every route, so its ratios are the
strict ones.

    python bench/route_cpu.py [--requests 3000] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from persona_server.app import create_app
from persona_server.cli import build_catalog
from persona_server.settings import Settings

HELLO = [{"role": "user", "content": "hello"}]
ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "openai": ("/v1/chat/completions", {"model": "bench", "messages": HELLO}),
    "anthropic": ("/v1/messages", {"model": "bench", "max_tokens": 100, "messages": HELLO}),
    "gemini": ("/v1beta/models/bench:generateContent", {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}),
    "bedrock-converse": ("/model/bench/converse", {"messages": [{"role": "user", "content": [{"text": "hello"}]}]}),
    "bedrock-invoke": ("/model/bench/invoke", {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
                                               "messages": HELLO}),
}


async def _started(app: Any) -> asyncio.Task[None]:
    messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    await messages.put({"type": "lifespan.startup"})
    ready = asyncio.Event()

    async def receive() -> dict[str, str]:
        return await messages.get()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            ready.set()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    await ready.wait()
    return task


async def _request(app: Any, path: str, body: bytes) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8337"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8337),
    }
    delivered = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def run(requests: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as workdir:
        persona = Path(workdir) / "bench.json"
        persona.write_text(json.dumps({"name": "bench", "solvers": ["ovos-solver-failure-plugin"],
                                       "ovos-solver-failure-plugin": {"answers": ["Hello from the benchmark."]}}))
        settings = Settings(persona_files=[str(persona)], watch=False)
        app = create_app(build_catalog(settings), settings)
        lifespan = await _started(app)
        await asyncio.sleep(0.5)  # solvers load in the background
        bodies = {name: (path, orjson.dumps(body)) for name, (path, body) in ROUTES.items()}
        for name, (path, body) in bodies.items():
            status = await _request(app, path, body)
            assert status == 200, f"{name}: {status}"
        best = {name: float("inf") for name in ROUTES}
        for _ in range(5):  # rounds interleave the routes, so a busy moment hits all of them alike
            for name, (path, body) in bodies.items():
                started = time.process_time()
                for _ in range(requests):
                    await _request(app, path, body)
                best[name] = min(best[name], (time.process_time() - started) / requests * 1e6)
        lifespan.cancel()
        return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per route and round")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    best = asyncio.run(run(args.requests))
    base = best["openai"]
    for name, micros in best.items():
        print(f"{name:18s} {micros:6.1f} us CPU/request   throughput ratio to openai {base / micros:.2f}")
    if args.json:
        args.json.write_text(json.dumps({
            "us_cpu_per_request": best, "ratio_to_openai": {name: base / us for name, us in best.items()}}, indent=2))


if __name__ == "__main__":
    main()
