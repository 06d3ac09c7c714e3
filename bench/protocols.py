"""Throughput of every wire protocol's non-streamed route against the OpenAI chat route, in one run.

One persona-server process (one worker, pinned like bench/throughput.py) serves a persona whose failure solver
has one fixed line; `wrk` loads each route in turn with a small request of that protocol. Each route's figure is
a ratio to the OpenAI chat route's, measured in the same rounds, so it does not depend on the machine. With
`--rounds N` every route is measured N times, interleaved, and the median counts. Besides req/s, the server
process's CPU time per request is reported (from /proc): on a machine other work also loads, it varies far
less than req/s does.

    python bench/protocols.py [--duration 5] [--rounds 3] [--only cohere-v2-chat,...] [--json FILE]

A protocol is one entry in PROTOCOLS: its name, its route, a small request body and the headers its SDK sends.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
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
]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux), or None where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check(base_url: str, protocol: Protocol) -> None:
    """One request first: the route must answer 200 with the persona's line, or its figure means nothing."""
    response = httpx.post(base_url + protocol.path, json=protocol.body, headers=protocol.headers, timeout=10)
    if response.status_code != 200 or CANNED not in response.text:
        raise RuntimeError(f"{protocol.name}: {response.status_code} {response.text[:300]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per route and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--only", help="comma-separated protocol names (the OpenAI chat route always runs)")
    parser.add_argument("--generator", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()

    chosen = PROTOCOLS
    if args.only:
        names = {BASELINE, *args.only.split(",")}
        unknown = names - {p.name for p in PROTOCOLS}
        if unknown:
            parser.error(f"unknown protocols: {', '.join(sorted(unknown))}")
        chosen = [p for p in PROTOCOLS if p.name in names]

    runs: dict[str, list[dict[str, float]]] = {p.name: [] for p in chosen}
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
                        args.generator, protocol.body, protocol.headers, warmup=False)
            for _ in range(args.rounds):
                for protocol in chosen:
                    before = cpu_seconds(process.pid)
                    row = measure(base_url + protocol.path, args.duration, args.connections, workdir,
                                  args.generator, protocol.body, protocol.headers, warmup=False)
                    after = cpu_seconds(process.pid)
                    if before is not None and after is not None and row["requests"]:
                        row["cpu_us"] = (after - before) * 1e6 / row["requests"]
                    runs[protocol.name].append(row)
        finally:
            process.terminate()
            process.wait(timeout=10)

    results = {name: {"rps": statistics.median(r["rps"] for r in rows),
                      "p50_ms": statistics.median(r["p50_ms"] for r in rows),
                      "p99_ms": statistics.median(r["p99_ms"] for r in rows),
                      "errors": sum(r["errors"] for r in rows),
                      "cpu_us_per_request": statistics.median(r.get("cpu_us", float("nan")) for r in rows),
                      "rps_runs": [round(r["rps"]) for r in rows]}
               for name, rows in runs.items()}
    base = results[BASELINE]["rps"]
    ratios = {name: row["rps"] / base for name, row in results.items()}
    base_cpu = results[BASELINE]["cpu_us_per_request"]
    cpu_ratios = {name: base_cpu / row["cpu_us_per_request"] for name, row in results.items()}
    print(f"load: {args.generator}, {args.connections} connections, {args.duration:g} s per route x "
          f"{args.rounds} rounds (median), one server process")
    print(f"{'route':<22}{'path':<22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'ratio':>7}"
          f"{'CPU µs/req':>12}{'CPU ratio':>11}")
    for protocol in chosen:
        row = results[protocol.name]
        print(f"{protocol.name:<22}{protocol.path:<22}{row['rps']:>9.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
              f"{row['errors']:>8.0f}{ratios[protocol.name]:>7.2f}{row['cpu_us_per_request']:>12.0f}"
              f"{cpu_ratios[protocol.name]:>11.2f}")
    worst = min(ratios.values())
    print(f"lowest ratio to {BASELINE}: {worst:.2f} req/s, {min(cpu_ratios.values()):.2f} CPU per request "
          "(target: >= 0.90)")
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
