"""Concurrency: many simultaneous requests to a persona whose LLM upstream takes 1 s, against the upstream alone.

Starts `bench/slow_upstream.py` (answers after `--delay` seconds) and persona-server with an OpenAI-compatible
solver pointed at it, then sends `--requests` chat completions at once: first straight to the upstream (the
baseline: its own 1 s), then through persona-server. A server that serialised solver calls or blocked its event
loop would take requests x 1 s; the target is all 256 done within 1.5 s.

    python bench/concurrency.py [--requests 256] [--delay 1.0] [--json bench/results/concurrency.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throughput import free_port  # noqa: E402


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} not ready")


async def _post(host: str, port: int, path: str, body: bytes) -> bytes:
    """One HTTP/1.1 request on its own connection. A raw client: httpx itself cannot open hundreds of
    connections at once without becoming the bottleneck of this measurement."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
        )
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    if not response.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(response[:200].decode(errors="replace"))
    return response


async def burst(port: int, count: int) -> dict[str, float]:
    body = json.dumps({"model": "", "messages": [{"role": "user", "content": "hello"}]}).encode()

    async def one() -> float:
        started = time.perf_counter()
        response = await _post("127.0.0.1", port, "/v1/chat/completions", body)
        assert b"answered" in response, response
        return time.perf_counter() - started

    started = time.perf_counter()
    latencies = sorted(await asyncio.gather(*(one() for _ in range(count))))
    wall = time.perf_counter() - started
    return {"wall_s": wall, "p50_s": latencies[len(latencies) // 2], "max_s": latencies[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    up_port, our_port = free_port(), free_port()
    env = {**os.environ, "BENCH_UPSTREAM_DELAY": str(args.delay)}
    upstream = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.slow_upstream:app", "--host", "127.0.0.1", "--port", str(up_port),
         "--log-level", "warning", "--no-access-log", "--backlog", "4096"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    with tempfile.TemporaryDirectory() as tmp:
        persona = Path(tmp) / "llm.json"
        persona.write_text(json.dumps({
            "name": "slow-llm", "solvers": ["ovos-solver-openai-plugin", "ovos-solver-failure-plugin"],
            "ovos-solver-openai-plugin": {"api_url": f"http://127.0.0.1:{up_port}/v1", "model": "slow",
                                          "timeout": 30},
        }))
        ours = subprocess.Popen(
            [sys.executable, "-m", "persona_server", "--persona", str(persona), "--host", "127.0.0.1",
             "--port", str(our_port), "--log-level", "warning"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(f"http://127.0.0.1:{up_port}/", upstream)
            wait_ready(f"http://127.0.0.1:{our_port}/health", ours)
            asyncio.run(burst(our_port, 4))  # warm-up
            base = asyncio.run(burst(up_port, args.requests))
            mine = asyncio.run(burst(our_port, args.requests))
        finally:
            for process in (ours, upstream):
                process.terminate()
                process.wait(timeout=10)

    report = {"requests": args.requests, "delay_s": args.delay, "upstream": base, "persona_server": mine,
              "ratio_wall": mine["wall_s"] / base["wall_s"], "wall_over_delay": mine["wall_s"] / args.delay}
    print(f"{args.requests} simultaneous chat completions, upstream answers after {args.delay:g} s:")
    print(f"  upstream alone:        all done in {base['wall_s']:.2f} s (p50 {base['p50_s']:.2f} s)")
    print(f"  through persona-server: all done in {mine['wall_s']:.2f} s (p50 {mine['p50_s']:.2f} s)")
    print(f"  ratio {report['ratio_wall']:.2f}; {report['wall_over_delay']:.2f} x the upstream's delay")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
