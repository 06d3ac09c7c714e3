"""Throughput of non-streaming chat completions: persona-server against a bare Starlette app, in one run.

Both servers answer the same canned reply (ours through a persona whose failure solver has one fixed line) on
one worker process each, and are loaded one after the other by the same generator over keep-alive
connections. The figure that matters is the ratio ours / baseline, which cancels out the machine's speed.

    python bench/throughput.py [--duration 10] [--connections 16] [--json bench/results/throughput.json]

The load generator is `wrk` when installed (apt-get install wrk), else a small built-in httpx generator
(slower, so only its ratio is comparable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BODY = {"model": "bench", "messages": [{"role": "user", "content": "hello"}]}
CANNED = "Hello from the benchmark."

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
%s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "JSON {\\"requests\\": %%d, \\"seconds\\": %%f, \\"errors\\": %%d, \\"p50_ms\\": %%f, \\"p99_ms\\": %%f}\\n",
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.post(url, json=BODY, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready")


def pinned(command: list[str], cpu: int) -> list[str]:
    """Run on one CPU when possible: server and load generator then never take turns on the same core, which
    makes runs repeatable on small machines. Applied alike to both servers."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu), *command]
    return command


SERVER_CPU, LOAD_CPU = 1, 0


def start_ours(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    persona = workdir / "bench.json"
    persona.write_text(json.dumps({
        "name": "bench", "solvers": ["ovos-solver-failure-plugin"],
        "ovos-solver-failure-plugin": {"answers": [CANNED]},
    }))
    return subprocess.Popen(
        pinned([sys.executable, "-m", "persona_server", "--persona", str(persona), "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "warning"], SERVER_CPU),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )


def start_baseline(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        pinned([sys.executable, "-m", "uvicorn", "bench.baseline_app:app", "--host", "127.0.0.1", "--port",
                str(port), "--log-level", "warning", "--no-access-log"], SERVER_CPU),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )


def run_wrk(url: str, duration: float, connections: int, workdir: Path, body: dict[str, Any] = BODY,
            headers: dict[str, str] | None = None) -> dict[str, float]:
    script = workdir / "post.lua"
    extra = "\n".join(f'wrk.headers["{name}"] = "{value}"' for name, value in (headers or {}).items())
    script.write_text(WRK_SCRIPT % (json.dumps(body), extra))
    out = subprocess.run(
        pinned(["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration:g}s", "-s", str(script), url], LOAD_CPU),
        capture_output=True, text=True, check=True,
    ).stdout
    match = re.search(r"^JSON (.*)$", out, re.M)
    if not match:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    data = json.loads(match.group(1))
    return {"rps": data["requests"] / data["seconds"], "p50_ms": data["p50_ms"], "p99_ms": data["p99_ms"],
            "errors": data["errors"], "requests": data["requests"]}


async def _python_load(url: str, duration: float, connections: int, body: dict[str, Any] = BODY,
                       headers: dict[str, str] | None = None) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.post(url, json=body, headers=headers)
                    if response.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000, "errors": errors, "requests": len(latencies)}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, duration: float, connections: int, workdir: Path, generator: str, pid: int | None = None,
            body: dict[str, Any] = BODY, headers: dict[str, str] | None = None,
            warmup: bool = True) -> dict[str, float]:
    if warmup:
        if generator == "wrk":
            run_wrk(url, min(2.0, duration), connections, workdir, body, headers)
        else:
            asyncio.run(_python_load(url, min(2.0, duration), connections, body, headers))
    before = cpu_seconds(pid) if pid is not None else None
    if generator == "wrk":
        result = run_wrk(url, duration, connections, workdir, body, headers)
    else:
        result = asyncio.run(_python_load(url, duration, connections, body, headers))
    after = cpu_seconds(pid) if pid is not None else None
    # The server's CPU time per request: on a machine busy with other work req/s varies a lot, this far less.
    if before is not None and after is not None and result["requests"]:
        result["cpu_us_per_request"] = (after - before) / result["requests"] * 1e6
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per server")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--generator", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name in ("baseline", "persona-server"):
            port = free_port()
            process = start_baseline(port) if name == "baseline" else start_ours(port, workdir)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            try:
                wait_ready(url, process)
                results[name] = measure(url, args.duration, args.connections, workdir, args.generator,
                                        process.pid)
            finally:
                process.terminate()
                process.wait(timeout=10)

    ours, base = results["persona-server"], results["baseline"]
    report = {
        "generator": args.generator,
        "connections": args.connections,
        "duration_s": args.duration,
        "cpu_count": os.cpu_count(),
        "results": results,
        "ratio_rps": ours["rps"] / base["rps"],
    }
    print(f"load: {args.generator}, {args.connections} connections, {args.duration:g} s per server, 1 worker each")
    print(f"{'server':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'CPU us/req':>12}")
    for name, row in results.items():
        print(f"{name:<16}{row['rps']:>10.0f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}{row['errors']:>8.0f}"
              f"{row.get('cpu_us_per_request', float('nan')):>12.1f}")
    print(f"ratio persona-server / baseline (req/s): {report['ratio_rps']:.2f}")
    if "cpu_us_per_request" in ours and "cpu_us_per_request" in base:
        report["ratio_cpu"] = base["cpu_us_per_request"] / ours["cpu_us_per_request"]
        print(f"ratio baseline / persona-server (CPU per request): {report['ratio_cpu']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
