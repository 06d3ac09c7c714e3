"""The latency shared state adds to a memory persona's answer: Redis (`--state`) against the in-process store.

Starts a `redis-server` (Debian's package) on loopback and two persona-server processes serving the same memory
persona (`"memory": 5`, the failure solver: the chain itself costs next to nothing, so the memory's work is what
differs): one keeps memory in process, the other in Redis. Every request names the same `user`, so each one
recalls the conversation and appends to it (one Lua script each way). Requests alternate between the two servers
over keep-alive connections, one at a time, so both see the same machine load; the figure is the difference of
the percentiles of their end-to-end latencies. Target: under 1 ms at p50 on loopback.

    python bench/state.py [--requests 2000] [--json bench/results/state.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import ServerProcess, start_server_process  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

PERSONA = {"name": "memo", "solvers": ["ovos-solver-failure-plugin"], "memory": 5,
           "ovos-solver-failure-plugin": {"answers": ["I do not know that one, but I will remember you asked."]}}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(values, 0.5) * 1e3, "p99_ms": percentile(values, 0.99) * 1e3,
            "mean_ms": statistics.fmean(values) * 1e3}


def measure(servers: dict[str, ServerProcess], requests: int, warmup: int) -> dict[str, list[float]]:
    clients = {name: httpx.Client(base_url=server.base_url, timeout=30) for name, server in servers.items()}
    times: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for index in range(warmup + requests):
            for name, client in clients.items():
                body = {"model": "memo", "user": "bench-user",
                        "messages": [{"role": "user", "content": f"question number {index}"}]}
                began = time.perf_counter()
                response = client.post("/v1/chat/completions", json=body)
                elapsed = time.perf_counter() - began
                response.raise_for_status()
                if index >= warmup:
                    times[name].append(elapsed)
    finally:
        for client in clients.values():
            client.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests measured per server")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-state-") as tmp:
        root = Path(tmp)
        persona = root / "memo.json"
        persona.write_text(json.dumps(PERSONA), encoding="utf-8")
        redis = RedisServer(binary, root).start()
        servers: dict[str, ServerProcess] = {}
        try:
            servers["process"] = start_server_process("--persona", str(persona), log_path=root / "process.log")
            servers["redis"] = start_server_process("--persona", str(persona), "--state", redis.url,
                                                    log_path=root / "redis.log")
            times = measure(servers, args.requests, args.warmup)
            llen = subprocess.run(["redis-cli", "-p", str(redis.port), "--scan", "--pattern", "*:memory:memo:*"],
                                  capture_output=True, text=True).stdout.split()
        finally:
            for server in servers.values():
                server.stop()
            redis.stop()
    result: dict[str, Any] = {"requests": args.requests, **{name: summary(v) for name, v in times.items()}}
    result["added_p50_ms"] = result["redis"]["p50_ms"] - result["process"]["p50_ms"]
    result["added_p99_ms"] = result["redis"]["p99_ms"] - result["process"]["p99_ms"]
    result["redis_conversation_keys"] = len(llen)  # 1: the answers really went through Redis
    print(f"memory persona, {args.requests} requests each, one at a time over keep-alive:")
    for name in ("process", "redis"):
        figures = result[name]
        print(f"  {name:8s} p50 {figures['p50_ms']:.3f} ms  p99 {figures['p99_ms']:.3f} ms  "
              f"mean {figures['mean_ms']:.3f} ms")
    print(f"Redis adds {result['added_p50_ms']:.3f} ms at p50, {result['added_p99_ms']:.3f} ms at p99")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
