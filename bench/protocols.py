"""Throughput of every wire protocol's non-streamed route against the OpenAI chat route, in one run.

One persona-server process (one worker, pinned like bench/throughput.py) serves a persona whose failure solver
has one fixed line; `wrk` loads each route in turn with a small request of that protocol. Each route's figure is
a ratio to the OpenAI chat route's, so it does not depend on the machine. With `--rounds N` every route is
measured N times, each run right after a run of the OpenAI chat route, and the median of those pairs' ratios
counts (the load of a shared machine changes from one second to the next). Besides req/s, the server process's
CPU time per request is reported (from /proc): on a machine other work also loads, it varies far less.

    python bench/protocols.py [--duration 2] [--rounds 5] [--only cohere-v2-chat,...] [--json FILE]
    python bench/protocols.py --in-process [--requests 2000]

`--in-process` drives the ASGI app directly, without sockets or a load generator, and reports the best of 7
batches in CPU microseconds per request (process time, so time the process spends waiting for a core while other
work runs is not counted): the server's own cost per route, the least disturbed figure on a busy machine.

A protocol is one entry in PROTOCOLS: its name, its route, a small request body and the headers its SDK sends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throughput import CANNED, free_port, measure, start_ours, wait_ready  # noqa: E402

HELLO = [{"role": "user", "content": "hello"}]


@dataclass(frozen=True)
class Protocol:
    name: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


BASELINE = "openai-chat"
PROTOCOLS = [
    Protocol(BASELINE, "/v1/chat/completions", {"model": "bench", "messages": HELLO}),
    Protocol("openai-completions", "/v1/completions", {"model": "bench", "prompt": "hello"}),
    Protocol("openai-responses", "/v1/responses", {"model": "bench", "input": "hello"}),
    Protocol("ollama-chat", "/api/chat", {"model": "bench", "messages": HELLO, "stream": False}),
    Protocol("ollama-generate", "/api/generate", {"model": "bench", "prompt": "hello", "stream": False}),
    Protocol("cohere-v2-chat", "/v2/chat", {"model": "bench", "messages": HELLO}),
    Protocol("cohere-v1-chat", "/v1/chat", {"model": "bench", "message": "hello"}),
    Protocol("cohere-v1-generate", "/v1/generate", {"model": "bench", "prompt": "hello"}),
    Protocol("tgi-generate", "/generate", {"inputs": "hello", "parameters": {}}),
    Protocol("tgi-compat", "/", {"inputs": "hello", "parameters": {}}),
    Protocol("anthropic-messages", "/v1/messages", {"model": "bench", "max_tokens": 100, "messages": HELLO},
             {"anthropic-version": "2023-06-01"}),
    Protocol("gemini-generate", "/v1beta/models/bench:generateContent",
             {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}),
    Protocol("bedrock-converse", "/model/bench/converse",
             {"messages": [{"role": "user", "content": [{"text": "hello"}]}]}),
    Protocol("bedrock-invoke", "/model/bench/invoke",
             {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": HELLO}),
]


def _scope(protocol: Protocol) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               *((k.lower().encode(), v.encode()) for k, v in protocol.headers.items())]
    return {"type": "http", "method": "POST", "path": protocol.path, "raw_path": protocol.path.encode(),
            "query_string": b"", "headers": headers, "http_version": "1.1", "scheme": "http",
            "server": ("127.0.0.1", 8337), "client": ("127.0.0.1", 40000), "root_path": "", "asgi": {"version": "3.0"}}


def in_process(chosen: list[Protocol], requests: int, batches: int = 7) -> dict[str, float]:
    """Microseconds per request of each route, the ASGI app called directly: best of `batches`, interleaved."""
    from persona_server.app import create_app
    from persona_server.cli import build_catalog
    from persona_server.settings import Settings

    async def run(workdir: Path) -> dict[str, float]:
        persona = workdir / "bench.json"
        persona.write_text(json.dumps({"name": "bench", "solvers": ["ovos-solver-failure-plugin"],
                                       "ovos-solver-failure-plugin": {"answers": [CANNED]}}))
        settings = Settings(persona_files=[str(persona)], watch=False)
        catalog = build_catalog(settings)
        app = create_app(catalog, settings)
        await catalog.start()
        best: dict[str, float] = {}
        try:
            await catalog.wait_ready()
            for _ in range(batches):
                for protocol in chosen:
                    body = json.dumps(protocol.body).encode()
                    statuses: set[int] = set()

                    async def receive(body: bytes = body) -> dict[str, Any]:
                        return {"type": "http.request", "body": body, "more_body": False}

                    async def send(message: dict[str, Any], statuses: set[int] = statuses) -> None:
                        if message["type"] == "http.response.start":
                            statuses.add(message["status"])

                    scope = _scope(protocol)
                    started = time.process_time()
                    for _ in range(requests):
                        await app(dict(scope), receive, send)
                    elapsed = (time.process_time() - started) / requests * 1e6
                    if statuses != {200}:
                        raise RuntimeError(f"{protocol.name}: statuses {statuses}")
                    best[protocol.name] = min(best.get(protocol.name, elapsed), elapsed)
        finally:
            await catalog.close()
        return best

    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(run(Path(tmp)))


def check(base_url: str, protocol: Protocol) -> None:
    """One request first: the route must answer 200 with the persona's line, or its figure means nothing."""
    response = httpx.post(base_url + protocol.path, json=protocol.body, headers=protocol.headers, timeout=10)
    if response.status_code != 200 or CANNED not in response.text:
        raise RuntimeError(f"{protocol.name}: {response.status_code} {response.text[:300]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds of load per run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--only", help="comma-separated protocol names (the OpenAI chat route always runs)")
    parser.add_argument("--generator", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--in-process", action="store_true", help="time the ASGI app directly, no sockets")
    parser.add_argument("--requests", type=int, default=2000, help="requests per batch with --in-process")
    args = parser.parse_args()
    if args.generator == "wrk":
        args.duration = max(1.0, round(args.duration))  # wrk takes whole seconds

    chosen = PROTOCOLS
    if args.only:
        names = {BASELINE, *args.only.split(",")}
        unknown = names - {p.name for p in PROTOCOLS}
        if unknown:
            parser.error(f"unknown protocols: {', '.join(sorted(unknown))}")
        chosen = [p for p in PROTOCOLS if p.name in names]

    if args.in_process:
        micros = in_process(chosen, args.requests)
        ratios = {name: micros[BASELINE] / value for name, value in micros.items()}
        print(f"in process: best of 7 batches of {args.requests} requests per route")
        print(f"{'route':<22}{'path':<40}{'µs/req':>9}{'ratio':>7}")
        for protocol in chosen:
            print(f"{protocol.name:<22}{protocol.path:<40}{micros[protocol.name]:>9.1f}{ratios[protocol.name]:>7.2f}")
        print(f"lowest ratio to {BASELINE}: {min(ratios.values()):.2f} (target: >= 0.90)")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"mode": "in-process", "requests": args.requests, "baseline": BASELINE,
                                             "results": micros, "ratios": ratios,
                                             "lowest_ratio": min(ratios.values())}, indent=2))
        return 0

    runs: dict[str, list[dict[str, float]]] = {p.name: [] for p in chosen}
    pairs: dict[str, list[tuple[float, float]]] = {p.name: [] for p in chosen if p.name != BASELINE}
    baseline = next(p for p in chosen if p.name == BASELINE)
    nan = float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        port = free_port()
        process = start_ours(port, workdir)
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base_url + "/v1/chat/completions", process)
            for protocol in chosen:
                check(base_url, protocol)
                measure(base_url + protocol.path, min(2.0, args.duration), args.connections, workdir,
                        args.generator, None, protocol.body, protocol.headers, warmup=False)
            def run(protocol: Protocol) -> dict[str, float]:
                row = measure(base_url + protocol.path, args.duration, args.connections, workdir,
                              args.generator, process.pid, protocol.body, protocol.headers, warmup=False)
                runs[protocol.name].append(row)
                return row

            # Each route right after a run of the baseline: on a machine whose load changes from one
            # second to the next, only neighbouring runs are comparable.
            for _ in range(args.rounds):
                for protocol in chosen:
                    if protocol.name == BASELINE:
                        continue
                    base_row = run(baseline)
                    row = run(protocol)
                    # A short run on a busy machine may see no clock tick of CPU time: no figure then.
                    cpu = base_row.get("cpu_us_per_request", nan) / (row.get("cpu_us_per_request") or nan)
                    pairs[protocol.name].append((row["rps"] / base_row["rps"], cpu))
        finally:
            process.terminate()
            process.wait(timeout=10)

    results = {name: {"rps": statistics.median(r["rps"] for r in rows),
                      "p50_ms": statistics.median(r["p50_ms"] for r in rows),
                      "p99_ms": statistics.median(r["p99_ms"] for r in rows),
                      "errors": sum(r["errors"] for r in rows),
                      "cpu_us_per_request": statistics.median(r.get("cpu_us_per_request", nan) for r in rows),
                      "rps_runs": [round(r["rps"]) for r in rows]}
               for name, rows in runs.items()}
    ratios = {BASELINE: 1.0, **{name: statistics.median(r for r, _ in rows) for name, rows in pairs.items()}}
    cpu_ratios = {BASELINE: 1.0, **{name: statistics.median(c for _, c in rows) for name, rows in pairs.items()}}
    print(f"load: {args.generator}, {args.connections} connections, {args.duration:g} s per run, {args.rounds} "
          f"rounds of (OpenAI chat, route) pairs, one server process; ratios: median over the pairs")
    print(f"{'route':<22}{'path':<40}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'ratio':>7}"
          f"{'CPU µs/req':>12}{'CPU ratio':>11}")
    for protocol in chosen:
        row = results[protocol.name]
        print(f"{protocol.name:<22}{protocol.path:<40}{row['rps']:>9.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
              f"{row['errors']:>8.0f}{ratios[protocol.name]:>7.2f}{row['cpu_us_per_request']:>12.0f}"
              f"{cpu_ratios[protocol.name]:>11.2f}")
    others = [name for name in ratios if name != BASELINE] or [BASELINE]
    worst = min(ratios[name] for name in others)
    print(f"lowest ratio to {BASELINE}: {worst:.2f} req/s, {min(cpu_ratios[name] for name in others):.2f} CPU per "
          "request (target: >= 0.90)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "generator": args.generator, "connections": args.connections, "duration_s": args.duration,
            "rounds": args.rounds, "cpu_count": os.cpu_count(), "baseline": BASELINE,
            "results": results, "ratios": ratios, "lowest_ratio": worst, "cpu_ratios": cpu_ratios,
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
