"""The built-in embedder against references: a plain numpy forward pass of the same weights (guards the ONNX graph
builder), and sentence-transformers' published similarities for all-MiniLM-L6-v2; plus the graph cache and the
embedder a persona's `embedder` block names."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from persona_server.embedding import DEFAULT_MODEL, default_embedder, embedder_from_config
from persona_server.embedding.graph import GRAPH_VERSION
from persona_server.embedding.local import MAX_TOKENS, MiniLMEmbedder, graph_path, model_dir
from persona_server.embedding.remote import OllamaEmbedder, OpenAIEmbedder

SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "A much longer sentence, so that the batch is padded: the shorter ones must not see the padding at all.",
    "naïve café — ünïcödé and numbers 12345",
]


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniLMEmbedder]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSONA_SERVER_CACHE", str(tmp_path_factory.mktemp("cache")))
        instance = MiniLMEmbedder()
        instance.runtime()
        yield instance


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


_erf = np.vectorize(math.erf, otypes=[np.float64])


def reference_embedding(ids: list[int]) -> np.ndarray:
    """BERT + mean pooling + L2 norm for one unpadded sentence, straight from the checkpoint, in float64."""
    directory = model_dir()
    config = json.loads((directory / "config.json").read_text())
    checkpoint = load_file(str(directory / "model.safetensors"))
    w = {k.removeprefix("bert."): v.astype(np.float64) for k, v in checkpoint.items()}
    heads, eps = config["num_attention_heads"], config["layer_norm_eps"]
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: len(ids)]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        def split(h: np.ndarray) -> np.ndarray:
            return h.reshape(len(ids), heads, -1).transpose(1, 0, 2)

        q, k, v = (split(dense(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(1, 0, 2).reshape(len(ids), -1)
        x = _layer_norm(x + dense(context, "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"], eps)
        h = dense(x, "intermediate.dense")
        h = 0.5 * h * (1 + _erf(h / math.sqrt(2)))
        x = _layer_norm(x + dense(h, "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"],
                        eps)
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def _ids(texts: list[str]) -> list[list[int]]:
    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()  # tokenizer.json pads to a fixed 128
    return [encoding.ids for encoding in tokenizer.encode_batch(texts)]


async def test_onnx_graph_matches_a_numpy_forward_pass(embedder: MiniLMEmbedder) -> None:
    long_text = " ".join(f"word{i}" for i in range(400))  # past 256 word pieces: truncated alike
    texts = [*SENTENCES, long_text]
    got = await embedder.embed(texts)  # one padded batch
    assert got.shape == (len(texts), 384) and got.dtype == np.float32
    for text, ids, row in zip(texts, _ids(texts), got, strict=True):
        assert float(np.dot(reference_embedding(ids), row)) > 0.999, text
    assert len(_ids([long_text])[0]) == MAX_TOKENS


async def test_published_similarities_of_all_minilm_l6_v2(embedder: MiniLMEmbedder) -> None:
    """sentence-transformers' README shows these for all-MiniLM-L6-v2: 0.6660, 0.1046, 0.1411."""
    vectors = await embedder.embed(SENTENCES[:3])
    similarity = vectors @ vectors.T
    assert similarity[0, 1] == pytest.approx(0.6660, abs=2e-3)
    assert similarity[0, 2] == pytest.approx(0.1046, abs=2e-3)
    assert similarity[1, 2] == pytest.approx(0.1411, abs=2e-3)


async def test_batches_and_order_do_not_change_vectors(embedder: MiniLMEmbedder) -> None:
    texts = [f"sentence {i} " + "x " * (i % 7) for i in range(70)]  # several batches, sorted by length inside
    together = await embedder.embed_with_usage(texts)
    alone = np.stack([(await embedder.embed([text]))[0] for text in texts[:5]])
    assert np.allclose(together.vectors[:5], alone, atol=1e-5)
    assert together.tokens == sum(len(ids) for ids in _ids(texts))
    assert (await embedder.embed([])).shape == (0, 384)
    assert await embedder.token_counts(["hello world", "a " * 300]) == [4, 302]


def test_the_graph_is_cached_by_weights_hash_and_version(embedder: MiniLMEmbedder) -> None:
    path = graph_path(model_dir())
    assert path.is_file() and path.name.endswith(f"-g{GRAPH_VERSION}.onnx")
    stamp = path.stat().st_mtime_ns
    assert graph_path(model_dir()) == path and path.stat().st_mtime_ns == stamp, "rebuilt instead of reused"
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_embedder_from_config() -> None:
    default = default_embedder()
    assert default is default_embedder() and default.name == DEFAULT_MODEL and default.dimensions == 384
    for config in (None, {}, {"model": "all-minilm"}, {"model": "all-minilm:latest"}):
        assert embedder_from_config(config) is default
    remote = embedder_from_config({"api_url": "http://127.0.0.1:9/v1/", "model": "m", "key": "k-123456"})
    assert isinstance(remote, OpenAIEmbedder) and remote._url == "http://127.0.0.1:9/v1/embeddings"
    local = embedder_from_config({"ollama_url": "http://127.0.0.1:9", "model": "nomic", "dimensions": 768})
    assert isinstance(local, OllamaEmbedder) and local._url == "http://127.0.0.1:9/api/embed"
    assert local.dimensions == 768
    for bad, message in (({"model": "text-embedding-3-small"}, "needs an 'api_url'"),
                         ({"api_url": "http://127.0.0.1:9/v1"}, "needs a 'model'"),
                         ({"api_url": "http://127.0.0.1:9/v1", "model": "m", "key": 5}, "'key' must be a string"),
                         ({"api_url": "http://127.0.0.1:9/v1", "model": "m", "dimensions": -1}, "dimensions")):
        with pytest.raises(ValueError, match=message):
            embedder_from_config(bad)


def test_url_credentials_leave_the_url() -> None:
    remote = embedder_from_config({"api_url": "http://user:pa55word@127.0.0.1:9/v1", "model": "m"})
    assert isinstance(remote, OpenAIEmbedder)
    assert remote._url == "http://127.0.0.1:9/v1/embeddings" and remote._basic is not None
    assert "pa55word" not in remote._url


def test_model_files_are_shipped() -> None:
    directory: Path = model_dir()
    assert (directory / "model.safetensors").stat().st_size > 80_000_000
    assert (directory / "tokenizer.json").is_file()
