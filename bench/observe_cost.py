"""What the front door costs each request (canonical path, request id and metrics, request budget, browser guard,
key check: api/front_door.py), and one solver turn's metric.

In-process and without a network, so the figure is the middleware's own CPU time (the throughput benchmark's
load generator and the machine's load would drown a few microseconds). The baseline is the same trivial ASGI app
called directly.

    python bench/observe_cost.py [--requests 200000] [--json bench/results/observe_cost.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from persona_server import metrics
from persona_server.api.browser import BrowserGuard, HostPolicy, OriginPolicy
from persona_server.api.front_door import FrontDoor
from persona_server.api.routes import all_routes, open_paths
from persona_server.budget import RequestBudget

SCOPE: dict[str, Any] = {
    "type": "http", "method": "POST", "path": "/v1/chat/completions",
    "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"wrk"), (b"content-type", b"application/json"),
                (b"content-length", b"70")],
}


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def send(message: Any) -> None:
    pass


async def per_call(target: Any, requests: int) -> float:
    began = time.perf_counter()
    for _ in range(requests):
        await target(SCOPE, receive, send)
    return (time.perf_counter() - began) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    guard = BrowserGuard(OriginPolicy(), HostPolicy())
    observed = FrontDoor(app, app, all_routes(), guard=guard, api_key=None, open_paths=open_paths(),
                         budget=RequestBudget(300.0))
    bare = asyncio.run(per_call(app, args.requests))
    wrapped = asyncio.run(per_call(observed, args.requests))
    began = time.perf_counter()
    for _ in range(args.requests):
        metrics.solver_turn("bench", "ovos-solver-failure-plugin", "answer", 0.0001)
    turn = (time.perf_counter() - began) / args.requests
    result = {"bare_us": bare * 1e6, "middleware_added_us": (wrapped - bare) * 1e6, "solver_turn_us": turn * 1e6}
    print(f"the front door adds {result['middleware_added_us']:.2f} us per request "
          f"(bare app {result['bare_us']:.2f} us); a solver turn's metric {result['solver_turn_us']:.2f} us")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
