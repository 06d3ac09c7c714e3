"""The vector stores' two backends: adding chunks, and KNN search latency (p50, p99) over `--chunks` chunks.

The same random unit vectors (384 dimensions, all-MiniLM-L6-v2's width; a fixed seed) go into sqlite-vec (a file
in a temporary data directory, the default backend) and into a Chroma server started here with `chroma run`
(skipped when the command is missing). Search is the backend's own call as the service makes it (k = 10, text
of each hit read back); embedding the query is not included (see bench/embeddings.py for that).

    python bench/vector_stores.py [--chunks 100000] [--queries 300] [--json bench/results/vector_stores.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from persona_server.vectorstores.backend import Chunk, VectorBackend  # noqa: E402
from persona_server.vectorstores.db import Database  # noqa: E402

DIMENSIONS = 384
BATCH = 1000


def vectors(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIMENSIONS)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def measure(backend: VectorBackend, chunks: int, queries: int) -> dict[str, Any]:
    backend.create_collection("vs_bench", DIMENSIONS)
    data = vectors(chunks, 1)
    started = time.perf_counter()
    for start in range(0, chunks, BATCH):
        batch = [Chunk(f"file-{i // 100}", i % 100, f"chunk {i} " * 20)
                 for i in range(start, min(chunks, start + BATCH))]
        backend.add("vs_bench", batch, data[start:start + len(batch)])
    added = time.perf_counter() - started
    assert backend.count("vs_bench") == chunks
    latencies = []
    for query in vectors(queries, 2):
        started = time.perf_counter()
        hits = backend.search("vs_bench", query, 10)
        latencies.append(time.perf_counter() - started)
        assert len(hits) == 10
    latencies.sort()
    return {"chunks": chunks, "add_chunks_per_s": round(chunks / added), "queries": queries,
            "search_p50_ms": round(statistics.median(latencies) * 1000, 2),
            "search_p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-vs-") as tmp:
        from persona_server.vectorstores.sqlite_backend import SqliteVecBackend

        db = Database(Path(tmp) / "vectorstores.sqlite3", vec=True)
        results["sqlite-vec"] = measure(SqliteVecBackend(db), args.chunks, args.queries)
        db.close()
        print("sqlite-vec", results["sqlite-vec"], flush=True)
        chroma = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
        if Path(chroma).exists():
            from persona_server.vectorstores.chroma_backend import ChromaBackend
            from tests.vectorstores.helpers import chroma_server

            with chroma_server(Path(tmp) / "chroma") as url:
                results["chroma"] = measure(ChromaBackend(url), args.chunks, args.queries)
            print("chroma", results["chroma"], flush=True)
        else:
            print("chroma: skipped (no chroma command; pip install chromadb)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
