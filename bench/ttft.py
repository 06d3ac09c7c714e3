"""Time to first token that persona-server adds in front of an OpenAI-compatible upstream.

Method: one scripted upstream (tests/llm/upstream.py) on loopback streams N tokens. The real `openai` client
streams the same chat request (a) straight from the upstream and (b) through a real persona-server process whose
persona is [ovos-solver-openai-plugin -> that upstream, failure]. Time to first token = from the call to the
first chunk carrying content. Requests alternate between (a) and (b) so drift hits both alike; the figure is
the difference of the medians (and of the 90th percentiles).

    .venv/bin/python bench/ttft.py [--requests 200] [--first-delay 0.05]

`--gguf` measures the local model instead (no HTTP): load time, time to first token, tokens/s (llama.cpp's
chunks, one per token) and resident memory of the process, for SmolLM2 through the gguf solver.

    .venv/bin/python bench/ttft.py --gguf [--threads 2] [--requests 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from llm.upstream import Reply, Upstream, free_port  # noqa: E402


def token_times(client: openai.OpenAI, model: str) -> tuple[float, float]:
    """(time to first token, mean gap between the following tokens) of one streamed answer."""
    started = time.perf_counter()
    stream = client.chat.completions.create(model=model, stream=True,
                                            messages=[{"role": "user", "content": "How are you?"}])
    arrivals = [time.perf_counter() - started for chunk in stream if chunk.choices and chunk.choices[0].delta.content]
    assert arrivals, "no content"
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    return arrivals[0], statistics.mean(gaps) if gaps else 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_gguf(threads: int, requests: int) -> None:
    import asyncio

    from persona_server.persona import Persona, parse_persona
    from persona_server.query import Query

    async def run() -> None:
        client = httpx.AsyncClient()
        before = rss_mb()
        block = {"n_threads": threads, "max_tokens": 128, "temperature": 0.3}
        persona = Persona(parse_persona({"solvers": ["gguf"], "gguf": block}, source="bench", default_name="b"),
                          http=lambda: client)
        started = time.perf_counter()
        await persona.start()
        await persona.wait_ready()
        load = time.perf_counter() - started
        loaded = rss_mb()
        assert persona.ready and persona.slots[0].state == "ready", persona.status()
        questions = ["What is the capital of France?", "Write a short poem about the sea.",
                     "Explain what a rainbow is.", "Give me three tips for sleeping well.", "Who wrote Hamlet?"]
        firsts, rates = [], []
        for i in range(requests):
            stream = persona.stream(Query.from_text(questions[i % len(questions)]))
            t0 = time.perf_counter()
            first, count = None, 0
            async for _ in stream:
                first = first if first is not None else time.perf_counter() - t0
                count += 1
            total = time.perf_counter() - t0
            assert first is not None
            firsts.append(first)
            rates.append((count - 1) / (total - first) if count > 1 else 0.0)
        peak = rss_mb()
        await persona.close()
        await client.aclose()
        print(f"gguf SmolLM2-135M Q4_1, n_threads={threads}, {requests} answers of <= 128 tokens")
        print(f"load {load:.2f} s; TTFT median {statistics.median(firsts) * 1000:.0f} ms; "
              f"{statistics.median(rates):.0f} tokens/s median (min {min(rates):.0f}, max {max(rates):.0f})")
        print(f"RSS: {before:.0f} MB before, {loaded:.0f} MB loaded, {peak:.0f} MB after generating "
              f"(model adds {peak - before:.0f} MB)")

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--first-delay", type=float, default=0.0, help="upstream's own delay before token 1")
    parser.add_argument("--token-delay", type=float, default=0.005, help="upstream's delay between tokens")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--gguf", action="store_true", help="measure the local gguf solver instead")
    parser.add_argument("--threads", type=int, default=2, help="n_threads for --gguf")
    args = parser.parse_args()
    if args.gguf:
        bench_gguf(args.threads, min(args.requests, 20))
        return

    with Upstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        upstream.default = Reply(tokens=["Fine", ",", " thanks", "."] * 5, first_delay=args.first_delay,
                                 delay=args.token_delay)
        persona = {"name": "Proxy", "solvers": ["ovos-solver-openai-plugin", "ovos-solver-failure-plugin"],
                   "ovos-solver-openai-plugin": {"api_url": upstream.base_url, "model": "bench"}}
        path = Path(tmp) / "proxy.json"
        path.write_text(json.dumps(persona))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        server = subprocess.Popen([sys.executable, "-m", "persona_server", "--persona", str(path),
                                   "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                                  cwd=ROOT, env=env)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("persona-server did not start")
                time.sleep(0.05)
            direct = openai.OpenAI(base_url=upstream.base_url, api_key="x", max_retries=0)
            proxied = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
            for _ in range(10):  # warm up connections and code paths
                token_times(direct, "bench")
                token_times(proxied, "Proxy")
            a: list[float] = []
            b: list[float] = []
            gaps_a: list[float] = []
            gaps_b: list[float] = []
            for _ in range(args.requests):
                first, gap = token_times(direct, "bench")
                a.append(first)
                gaps_a.append(gap)
                first, gap = token_times(proxied, "Proxy")
                b.append(first)
                gaps_b.append(gap)
        finally:
            server.terminate()
            server.wait(timeout=10)

    ms = 1000.0
    print(f"requests: {args.requests} each; upstream first_delay {args.first_delay * ms:.0f} ms")
    print(f"upstream direct   TTFT median {statistics.median(a) * ms:7.2f} ms   p90 {percentile(a, 0.9) * ms:7.2f} ms")
    print(f"via persona-server TTFT median {statistics.median(b) * ms:7.2f} ms   p90 {percentile(b, 0.9) * ms:7.2f} ms")
    print(f"added by persona-server: median {(statistics.median(b) - statistics.median(a)) * ms:+.2f} ms, "
          f"p90 {(percentile(b, 0.9) - percentile(a, 0.9)) * ms:+.2f} ms")
    gap_a, gap_b = statistics.median(gaps_a), statistics.median(gaps_b)
    print(f"gap between tokens (upstream sends every {args.token_delay * ms:.1f} ms): direct {gap_a * ms:.2f} ms, "
          f"via persona-server {gap_b * ms:.2f} ms ({(gap_b - gap_a) * ms:+.2f} ms)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "requests": args.requests,
            "ttft_direct_median_s": statistics.median(a),
            "ttft_proxied_median_s": statistics.median(b),
            "ttft_added_median_s": statistics.median(b) - statistics.median(a),
            "ttft_added_p90_s": percentile(b, 0.9) - percentile(a, 0.9),
            "gap_direct_s": gap_a,
            "gap_proxied_s": gap_b,
        }, indent=2))


if __name__ == "__main__":
    main()
