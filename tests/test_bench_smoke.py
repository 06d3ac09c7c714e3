"""A short run of every benchmark script, so CI knows they still work. Figures are not checked here: they are
ratios reported by the scripts themselves (bench/README.md), never timed assertions in the test suite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env

RUNS = {
    "throughput": (["--duration", "1", "--connections", "4", "--generator", "python"], {"ratio_rps", "results"}),
    "protocols": (["--duration", "0.3", "--rounds", "1", "--connections", "4", "--generator", "python"],
                  {"ratios", "results", "lowest_ratio"}),
    "startup": (["--runs", "1"], {"results"}),
    "speculation": (["--runs", "1", "--delay", "0.05"], {"in_order_s", "speculative_s"}),
    "concurrency": (["--requests", "16", "--delay", "0.2"], {"ratio_wall", "upstream", "persona_server"}),
    "ttft": (["--requests", "6"], {"ttft_added_median_s", "gap_proxied_s"}),
    "soak": (["--duration", "2", "--warmup", "0.5", "--concurrency", "4"], {"growth_mb_per_10k_requests", "rss_mb"}),
    "everyday": (["--runs", "2"], {"runs", "results"}),
    "observe_cost": (["--requests", "2000"], {"middleware_added_us", "solver_turn_us"}),
    "mcp_tools": (["--calls", "3"], {"toolboxes", "persona_tools"}),
    "knowledge": (["--passages", "300", "--index-passages", "40", "--queries", "5", "--vectors", "{tmp}/v.npy"],
                  {"indexing", "build", "retrieval"}),
    "embeddings": (["--batches", "2", "--batch-size", "4", "--rounds", "1"], {"ratio_median", "results"}),
    "vector_stores": (["--chunks", "300", "--queries", "5"], {"sqlite-vec"}),
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_bench_script_runs(script: str, tmp_path: Path) -> None:
    args, keys = RUNS[script]
    out = tmp_path / "result.json"
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    command = [sys.executable, str(ROOT / "bench" / f"{script}.py"), *args]
    if keys is not None:
        command += ["--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT, env=cli_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip()
    if keys is not None:
        assert keys <= set(json.loads(out.read_text()))


def test_protocols_in_process(tmp_path: Path) -> None:
    """bench/protocols.py's in-process mode: every protocol's route answered 200 through the ASGI app."""
    out = tmp_path / "result.json"
    command = [sys.executable, str(ROOT / "bench" / "protocols.py"), "--in-process", "--requests", "5",
               "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT, env=cli_env())
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(out.read_text())
    assert {"anthropic-messages", "gemini-generate", "bedrock-converse", "bedrock-invoke", "cohere-v2-chat",
            "tgi-compat", "openai-responses", "ollama-chat"} <= set(figures["results"])


def test_state_bench_runs(tmp_path: Path) -> None:
    """bench/state.py needs a redis-server (Debian's package, installed by .ci/run)."""
    from tests.conftest import require_binary

    require_binary("redis-server", "redis-server")
    out = tmp_path / "result.json"
    command = [sys.executable, str(ROOT / "bench" / "state.py"), "--requests", "20", "--warmup", "5",
               "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT, env=cli_env())
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(out.read_text())
    assert {"process", "redis", "added_p50_ms", "added_p99_ms"} <= set(figures)
    assert figures["redis_conversation_keys"] == 1
