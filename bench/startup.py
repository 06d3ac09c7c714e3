"""Start-up time and memory: the default persona against a bare Starlette app, in one run.

For each server: seconds from process start until it answers HTTP (listening), until `/health` is 200 (every
solver's data loaded), and its resident memory once ready. The bare Starlette app (`bench/baseline_app.py`) is
the baseline; a failure-only persona shows what the server itself costs before any solver data.

    python bench/startup.py [--runs 3] [--json bench/results/startup.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throughput import free_port  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(command: list[str], port: int, ready_path: str | None) -> dict[str, float]:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    listening = ready = None
    try:
        while ready is None:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited with {process.returncode}")
            try:
                response = httpx.get(f"http://127.0.0.1:{port}{ready_path or '/'}", timeout=1)
                now = time.perf_counter() - started
                listening = listening or now
                if ready_path is None or response.status_code == 200:
                    ready = now
            except httpx.TransportError:
                pass
            time.sleep(0.01)
        time.sleep(0.2)  # let start-up garbage settle before reading memory
        return {"listening_s": listening, "ready_s": ready, "rss_mb": rss_mb(process.pid)}
    finally:
        process.terminate()
        process.wait(timeout=10)


def servers(workdir: Path) -> dict[str, tuple[list[str], str | None]]:
    failure_only = workdir / "failure.json"
    failure_only.write_text(json.dumps({"name": "failure-only", "solvers": ["ovos-solver-failure-plugin"]}))
    ours = [sys.executable, "-m", "persona_server", "--host", "127.0.0.1", "--log-level", "warning"]
    return {
        "baseline (bare Starlette)": (
            [sys.executable, "-m", "uvicorn", "bench.baseline_app:app", "--host", "127.0.0.1",
             "--log-level", "warning"], None),
        "failure-only persona": ([*ours, "--persona", str(failure_only)], "/health"),
        "default persona": (ours, "/health"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="start each server this many times (median)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (command, ready_path) in servers(Path(tmp)).items():
            runs = []
            for _ in range(args.runs):
                port = free_port()
                runs.append(measure([*command, "--port", str(port)], port, ready_path))
            results[name] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    base = results["baseline (bare Starlette)"]
    print(f"{'server':<28}{'listening s':>12}{'ready s':>10}{'RSS MB':>9}{'ready/base':>12}{'RSS/base':>10}")
    for name, row in results.items():
        print(f"{name:<28}{row['listening_s']:>12.2f}{row['ready_s']:>10.2f}{row['rss_mb']:>9.0f}"
              f"{row['ready_s'] / base['ready_s']:>12.1f}{row['rss_mb'] / base['rss_mb']:>10.1f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": args.runs, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
