"""Embedding throughput: our `POST /v1/embeddings` against calling onnxruntime directly, on the same batches.

The direct baseline loads the very graph file the server runs, with the same session options (threads, no
spinning), and does what any caller of onnxruntime must: tokenize each batch and run the session. It also reports
`session.run` alone on pre-tokenized batches, the floor of what any server could reach. The server is one
worker process; the client sends one request per batch over one keep-alive connection, so both sides embed one
batch at a time. Direct and server rounds alternate, so machine noise hits both alike; the figure is the ratio
of texts per second (ours / direct), target at least 0.9.

    python bench/embeddings.py [--batches 48] [--batch-size 32] [--rounds 3] [--encoding base64]
                               [--json bench/results/embeddings.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
WORDS = (
    "the of and to in is was for on that with as by at from his her an which they this be are have were had not "
    "but or one all their there been has more when will would who if no out so up said what its about into than "
    "them can only other new some could time these two may then do first any my now such like our over man me "
    "even most made after also did many before must through back years where much your way well down should "
    "because each just those people how too little state good very make world still own see men work long get "
    "here between both life being under never day same another know while last might us great old year off come "
    "since against go came right used take three states himself few house use during without again place around "
    "however home small found thought went say part once general high upon school every don't does got united "
    "left number course war until always away something fact though water less public put think almost hand "
    "enough far took head yet government system better set told nothing night end why called didn't eyes find "
    "going look asked later knew point next program city business give group toward young days let room "
    "president side social given present several order national possible rather second face per among form "
    "important often things looked early white case john become large big need four within felt along children "
    "saw best church ever least power development light thing seemed family interest want members mind country "
    "area others done turned although open god service certain kind problem began different door thus help sense "
    "means whole matter perhaps itself york times law human line above name example action company hands local "
    "show whether five history gave today either act feet across taken past quite anything seen having death "
    "week experience body word half really field am car words already themselves information tell together "
    "college shall money period held keep sure real probably free seems political cannot behind miss question"
).split()


def texts_for(count: int, seed: int) -> list[str]:
    """Sentences of 5 to 120 words (a few past the model's 256 word pieces), the same for every run."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        length = rng.choice([rng.randint(5, 20), rng.randint(20, 60), rng.randint(60, 120)])
        out.append(" ".join(rng.choice(WORDS) for _ in range(length)).capitalize() + ".")
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "persona_server", "--host", "127.0.0.1", "--port", str(port), "--log-level",
         "warning"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("server not ready")


def run_server(client: httpx.Client, url: str, batches: list[list[str]], encoding: str) -> float:
    start = time.perf_counter()
    for batch in batches:
        response = client.post(url, json={"model": "all-minilm", "input": batch, "encoding_format": encoding})
        response.raise_for_status()
        if len(response.json()["data"]) != len(batch):
            raise RuntimeError("wrong number of embeddings")
    return time.perf_counter() - start


def run_direct(runtime: Any, batches: list[list[str]]) -> float:
    start = time.perf_counter()
    for batch in batches:
        runtime.encode(batch)
    return time.perf_counter() - start


def run_session_only(runtime: Any, feeds: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for feed in feeds:
        runtime.session.run(["embeddings"], feed)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--encoding", choices=["base64", "float"], default="base64",
                        help="what the client asks for (the openai SDK asks for base64)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    cache = tempfile.mkdtemp(prefix="bench-embeddings-")
    os.environ["PERSONA_SERVER_CACHE"] = cache  # the server and the direct baseline share one graph file
    from persona_server.embedding.local import load_runtime

    texts = texts_for(args.batches * args.batch_size, seed=15)
    batches = [texts[i : i + args.batch_size] for i in range(0, len(texts), args.batch_size)]
    runtime = load_runtime()  # builds the graph file into the cache; the server then loads that same file
    feeds = [runtime.tokenize(batch) for batch in batches]
    port = free_port()
    server = start_server(port, {**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/v1/embeddings"
    rounds: list[dict[str, float]] = []
    try:
        with httpx.Client(timeout=300) as client:
            run_server(client, url, batches[:2], args.encoding)  # load the model, warm the connection
            run_direct(runtime, batches[:2])
            for _ in range(args.rounds):
                rounds.append({
                    "direct_s": run_direct(runtime, batches),
                    "server_s": run_server(client, url, batches, args.encoding),
                    "session_only_s": run_session_only(runtime, feeds),
                })
    finally:
        server.terminate()
        server.wait(timeout=10)

    count = len(texts)
    results = [{
        **r,
        "direct_texts_per_s": count / r["direct_s"],
        "server_texts_per_s": count / r["server_s"],
        "session_only_texts_per_s": count / r["session_only_s"],
        "ratio": r["direct_s"] / r["server_s"],
        "ratio_to_session_only": r["session_only_s"] / r["server_s"],
    } for r in rounds]
    summary = {
        "texts": count,
        "batch_size": args.batch_size,
        "encoding": args.encoding,
        "threads": runtime.session.get_session_options().intra_op_num_threads,
        "results": results,
        "ratio_median": statistics.median(r["ratio"] for r in results),
        "ratio_to_session_only_median": statistics.median(r["ratio_to_session_only"] for r in results),
    }
    for index, r in enumerate(results, 1):
        print(f"round {index}: direct {r['direct_texts_per_s']:.0f} texts/s, server {r['server_texts_per_s']:.0f} "
              f"texts/s, session.run only {r['session_only_texts_per_s']:.0f} texts/s; ratio {r['ratio']:.3f} "
              f"(to session.run only {r['ratio_to_session_only']:.3f})")
    print(f"median ratio {summary['ratio_median']:.3f} (target >= 0.9)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
