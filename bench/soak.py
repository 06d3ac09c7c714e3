"""Soak: a bounded run of mixed requests, watching the server's memory for growth.

Starts `bench/slow_upstream.py` (a fast OpenAI-compatible upstream) and one persona-server process serving the
built-in offline persona, a persona with memory and an LLM persona behind that upstream, then sends mixed
traffic for `--duration` seconds from `--concurrency` workers: OpenAI chat (whole and streamed, some abandoned
mid-stream), legacy completions, Responses, Ollama chat and generate, requests with and without `user` (many
distinct users, so per-user state fills its bounds), and bad requests (invalid JSON, unknown routes, wrong types).

Memory is the server's resident set size (VmRSS) after a warm-up (the baseline: start), half-way and at the
end; the figure that matters is the growth per 10,000 requests between the middle and the end, once every cache
has reached its bound, and end / start as a ratio.

    python bench/soak.py [--duration 60] [--concurrency 16] [--json bench/results/soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.concurrency import wait_ready  # noqa: E402
from bench.throughput import free_port  # noqa: E402

QUESTIONS = ["hello", "tell me a joke", "what is a lighthouse", "define serendipity", "my name is Ann",
             "what is my name", "write a poem about the sea", "how are you", "what is the speed of light?"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _chat(model: str, question: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": question}], **extra}


def _request(rng: random.Random) -> tuple[str, str, bytes | dict[str, Any] | None, bool]:
    """One mixed request: (method, path, body, abandon_after_first_chunk)."""
    question = rng.choice(QUESTIONS)
    user = f"user-{rng.randrange(20_000)}" if rng.random() < 0.5 else None
    extra = {"user": user} if user else {}
    model = rng.choice(["", "Remembers", "Llm"])
    kind = rng.randrange(12)
    if kind == 0:
        return "POST", "/v1/chat/completions", _chat(model, question, stream=True, **extra), rng.random() < 0.5
    if kind == 1:
        return "POST", "/v1/completions", {"model": model, "prompt": question, **extra}, False
    if kind == 2:
        return "POST", "/v1/responses", {"model": model, "input": question, **extra}, False
    if kind == 3:
        return "POST", "/api/chat", _chat(model, question, stream=rng.random() < 0.5, **extra), False
    if kind == 4:
        return "POST", "/api/generate", {"model": model, "prompt": question, "stream": False}, False
    if kind == 5:
        return "POST", "/v1/chat/completions", b'{"model": "", "messages": [', False
    if kind == 6:
        return "GET", rng.choice(["/v1/models", "/api/tags", "/status", "/nope", "/api/ps"]), None, False
    if kind == 7:
        return "POST", "/v1/chat/completions", {"model": 5, "messages": "wrong"}, False
    return "POST", "/v1/chat/completions", _chat(model, question, **extra), False


async def _one(client: httpx.AsyncClient, rng: random.Random, statuses: Counter[int]) -> None:
    method, path, body, abandon = _request(rng)
    kwargs: dict[str, Any] = {}
    if isinstance(body, bytes):
        kwargs["content"] = body
        kwargs["headers"] = {"Content-Type": "application/json"}
    elif body is not None:
        kwargs["json"] = body
    try:
        async with client.stream(method, path, **kwargs) as response:
            statuses[response.status_code] += 1
            async for _ in response.aiter_bytes():
                if abandon:
                    break  # the client leaves mid-stream: the server must clean up
    except httpx.HTTPError:
        statuses[0] += 1


async def _load(base: str, pid: int, duration: float, concurrency: int) -> dict[str, Any]:
    statuses: Counter[int] = Counter()
    samples: list[tuple[float, int, float]] = []  # (elapsed s, requests so far, RSS MB)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        started = time.monotonic()
        deadline = started + duration

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < deadline:
                await _one(client, rng, statuses)

        async def sampler() -> None:
            while time.monotonic() < deadline:
                samples.append((time.monotonic() - started, sum(statuses.values()), rss_mb(pid)))
                await asyncio.sleep(1.0)

        await asyncio.gather(sampler(), *(worker(seed) for seed in range(concurrency)))
        elapsed = time.monotonic() - started
        samples.append((elapsed, sum(statuses.values()), rss_mb(pid)))
        health = (await client.get("/health")).status_code
    return {"statuses": dict(statuses), "samples": samples, "elapsed_s": elapsed, "health_after": health}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of mixed load (bounded)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of the same load before measuring")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        up_port, port = free_port(), free_port()
        upstream = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.slow_upstream:app", "--host", "127.0.0.1", "--port",
             str(up_port), "--log-level", "warning", "--no-access-log"],
            cwd=ROOT, env={**os.environ, "BENCH_UPSTREAM_DELAY": "0.005"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        personas = {
            "remembers.json": {"name": "Remembers", "memory": 5,
                               "solvers": ["ovos-solver-rivescript-plugin", "ovos-solver-failure-plugin"]},
            "llm.json": {"name": "Llm", "solvers": ["ovos-solver-openai-plugin"],
                         "ovos-solver-openai-plugin": {"api_url": f"http://127.0.0.1:{up_port}/v1", "key": "k",
                                                       "model": "slow"}},
        }
        for name, data in personas.items():
            (workdir / name).write_text(json.dumps(data))
        command = [sys.executable, "-m", "persona_server", "--personas", str(workdir), "--no-watch",
                   "--default-persona", "default", "--host", "127.0.0.1", "--port", str(port), "--log-level", "error"]
        # The built-in persona is the default; the directory's personas are served beside it.
        (workdir / "default.json").write_text(json.dumps({"name": "default", "solvers": [
            "ovos-solver-wordnet-plugin", "ovos-solver-rivescript-plugin", "ovos-solver-failure-plugin"]}))
        server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(f"http://127.0.0.1:{up_port}/", upstream)
            wait_ready(base + "/health", server)
            while httpx.get(base + "/health").status_code != 200:
                time.sleep(0.1)
            asyncio.run(_load(base, server.pid, args.warmup, args.concurrency))
            run = asyncio.run(_load(base, server.pid, args.duration, args.concurrency))
        finally:
            for process in (server, upstream):
                process.terminate()
                process.wait(timeout=20)

    samples = run["samples"]
    start, end = samples[0], samples[-1]
    middle = min(samples, key=lambda s: abs(s[0] - end[0] / 2))
    requests_second_half = max(1, end[1] - middle[1])
    report = {
        "duration_s": run["elapsed_s"],
        "concurrency": args.concurrency,
        "requests": end[1],
        "statuses": run["statuses"],
        "server_errors": sum(n for code, n in run["statuses"].items() if code >= 500 or code == 0),
        "health_after": run["health_after"],
        "rss_mb": {"start": start[2], "middle": middle[2], "end": end[2]},
        "ratio_end_start": end[2] / start[2],
        "growth_mb_per_10k_requests": (end[2] - middle[2]) / requests_second_half * 10_000,
    }
    print(f"{report['requests']} requests in {report['duration_s']:.0f} s, {args.concurrency} workers; "
          f"statuses {dict(sorted(run['statuses'].items()))}; /health after: {report['health_after']}")
    print(f"RSS MB: start {start[2]:.1f}, middle {middle[2]:.1f}, end {end[2]:.1f} "
          f"(end/start {report['ratio_end_start']:.2f}); growth {report['growth_mb_per_10k_requests']:.2f} MB "
          f"per 10,000 requests in the second half")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["server_errors"] == 0 and report["health_after"] == 200 else 1


if __name__ == "__main__":
    raise SystemExit(main())
