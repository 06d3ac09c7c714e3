"""Embeddings through a real server process: the `openai` and `ollama` clients, raw requests, model lists, bounds,
and a persona whose embedder is a scripted upstream on 127.0.0.1 (its key never shows)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import ollama
import openai
import pytest

from tests.conftest import ServerProcess, persona_args, start_server_process
from tests.llm.upstream import Upstream, scripted_vector

SECRET = "sk-embed-secret-4f9a1c"
QUESTION = "How do I reset my password?"
PARAPHRASE = "What are the steps to change my password if I forgot it?"
UNRELATED = "The giraffe is the tallest living animal on Earth."


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, isolated_cache: Path,
           upstream: Upstream) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("embeddings")
    files = {
        "chat.json": {"name": "Chat", "solvers": ["ovos-solver-failure-plugin"]},
        "remote.json": {"name": "Remote", "solvers": ["ovos-solver-failure-plugin"],
                        "embedder": {"api_url": upstream.base_url, "model": "text-embed-x", "key": SECRET}},
        "remote_ollama.json": {"name": "RemoteOllama", "solvers": ["ovos-solver-failure-plugin"],
                               "embedder": {"ollama_url": upstream.base_url.removesuffix("/v1"),
                                            "model": "nomic-embed-text"}},
    }
    proc = start_server_process(*persona_args(root, files), log_path=root / "server.log")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_openai_float_one_and_many_rank_a_paraphrase_first(client: openai.OpenAI) -> None:
    many = client.embeddings.create(model="all-minilm", input=[QUESTION, PARAPHRASE, UNRELATED],
                                    encoding_format="float")
    assert many.model == "all-minilm" and [d.index for d in many.data] == [0, 1, 2]
    vectors = np.array([d.embedding for d in many.data], dtype=np.float32)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    assert many.usage.prompt_tokens == many.usage.total_tokens > 3 * 2  # word pieces plus [CLS] and [SEP]
    one = client.embeddings.create(model="all-minilm", input=QUESTION, encoding_format="float")
    assert len(one.data) == 1
    # Batched with others or alone, padded or not: the same vector.
    assert cosine(np.array(one.data[0].embedding), vectors[0]) > 0.9999


def test_openai_base64_is_little_endian_float32_of_the_same_vectors(client: openai.OpenAI,
                                                                    server: ServerProcess) -> None:
    # The SDK asks for base64 unless told otherwise, and decodes it.
    decoded = client.embeddings.create(model="all-minilm", input=[QUESTION, UNRELATED])
    floats = client.embeddings.create(model="all-minilm", input=[QUESTION, UNRELATED], encoding_format="float")
    for a, b in zip(decoded.data, floats.data, strict=True):
        assert np.allclose(a.embedding, b.embedding, atol=1e-6)
    raw = httpx.post(server.base_url + "/v1/embeddings",
                     json={"input": PARAPHRASE, "encoding_format": "base64"}).json()
    row = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert row.shape == (384,) and abs(float(np.linalg.norm(row)) - 1) < 1e-4
    assert raw["object"] == "list" and raw["data"][0]["object"] == "embedding"


def test_model_names_that_mean_the_built_in_model(client: openai.OpenAI, server: ServerProcess) -> None:
    reference = np.array(client.embeddings.create(model="all-minilm", input=QUESTION,
                                                  encoding_format="float").data[0].embedding)
    absent = httpx.post(server.base_url + "/v1/embeddings", json={"input": QUESTION}).json()
    assert absent["model"] == "all-minilm"
    for model in ("", "all-minilm:latest", "Chat", "no-such-model"):
        got = client.embeddings.create(model=model, input=QUESTION, encoding_format="float")
        assert cosine(np.array(got.data[0].embedding), reference) > 0.9999, model
    # The original's vendor prefix serves the same route.
    prefixed = httpx.post(server.base_url + "/openai/v1/embeddings", json={"input": QUESTION})
    assert prefixed.status_code == 200 and len(prefixed.json()["data"][0]["embedding"]) == 384


def test_model_lists_name_the_built_in_model(client: openai.OpenAI, server: ServerProcess) -> None:
    assert [m.id for m in client.models.list()] == ["Chat", "Remote", "RemoteOllama", "all-minilm"]
    assert client.models.retrieve("all-minilm").id == "all-minilm"
    tags = httpx.get(server.base_url + "/api/tags").json()["models"]
    assert [m["name"] for m in tags][-1] == "all-minilm:latest"
    assert tags[-1]["details"]["family"] == "bert" and tags[-1]["size"] > 80_000_000
    shown = ollama.Client(host=server.base_url).show("all-minilm")
    assert shown.capabilities == ["embedding"]


@pytest.mark.parametrize(
    ("body", "status", "param", "message"),
    [
        ({"input": "x", "dimensions": 256}, 400, "dimensions", "must be 384"),
        ({"input": [1, 2, 3]}, 400, "input", "token-id arrays"),
        ({"input": [[1, 2], [3]]}, 400, "input", "token-id arrays"),
        ({"input": []}, 400, "input", "must not be empty"),
        ({"input": ["a", ""]}, 400, "input", "empty strings"),
        ({"input": 7}, 400, "input", "Input should be"),
        ({}, 400, "input", "required"),
        ({"input": "x", "encoding_format": "int8"}, 400, "encoding_format", "encoding_format"),
        ({"input": ["x"] * 2049}, 400, "input", "at most 2048"),
        ({"input": "x" * 100_001}, 413, "input", "longer than"),
        ({"input": ["y" * 100_000] * 11}, 413, "input", "in all"),
    ],
)
def test_bad_requests_are_openai_errors(server: ServerProcess, body: dict, status: int, param: str,
                                        message: str) -> None:
    response = httpx.post(server.base_url + "/v1/embeddings", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and message in error["message"]


def test_the_openai_client_raises_its_own_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="all-minilm", input="x", dimensions=1536)
    assert info.value.code == "invalid_value"
    assert client.embeddings.create(model="all-minilm", input="x", dimensions=384).data[0].embedding


def test_ollama_embed_one_and_many(server: ServerProcess) -> None:
    client = ollama.Client(host=server.base_url)
    many = client.embed(model="all-minilm", input=[QUESTION, PARAPHRASE, UNRELATED])
    assert many.model == "all-minilm:latest" and many.prompt_eval_count > 6 and many.total_duration > 0
    vectors = np.array(many.embeddings)
    assert vectors.shape == (3, 384)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    one = client.embed(model="all-minilm:latest", input=QUESTION)
    assert cosine(np.array(one.embeddings[0]), vectors[0]) > 0.9999
    legacy = httpx.post(server.base_url + "/api/embeddings", json={"model": "all-minilm", "prompt": QUESTION}).json()
    assert cosine(np.array(legacy["embedding"]), vectors[0]) > 0.9999
    assert httpx.post(server.base_url + "/api/embeddings", json={"model": "all-minilm", "prompt": ""}).json() == {
        "embedding": []}
    assert httpx.post(server.base_url + "/api/embed", json={"model": "all-minilm", "input": []}).json()[
        "embeddings"] == []


def test_ollama_truncate_false_refuses_what_the_model_would_cut(server: ServerProcess) -> None:
    client = ollama.Client(host=server.base_url)
    long_text = "lorem " * 400
    assert len(client.embed(model="all-minilm", input=long_text).embeddings[0]) == 384
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model="all-minilm", input=long_text, truncate=False)
    assert info.value.status_code == 400 and "more than the limit of 256" in info.value.error
    bad = httpx.post(server.base_url + "/api/embed", json={"model": "all-minilm", "input": [3]})
    assert bad.status_code == 400 and isinstance(bad.json()["error"], str)


def test_upstream_openai_embedder_is_used_and_its_key_never_shows(client: openai.OpenAI, server: ServerProcess,
                                                                   upstream: Upstream) -> None:
    before = len(upstream.requests)
    got = client.embeddings.create(model="Remote", input=["alpha", "beta", "gamma"], encoding_format="float")
    seen = upstream.requests[before:]
    assert [r.path for r in seen] == ["/v1/embeddings"]
    assert seen[0].body["model"] == "text-embed-x" and seen[0].body["input"] == ["alpha", "beta", "gamma"]
    assert seen[0].headers["authorization"] == f"Bearer {SECRET}"
    assert got.model == "Remote" and got.usage.prompt_tokens == 9
    for text, row in zip(["alpha", "beta", "gamma"], got.data, strict=True):
        expected = np.array(scripted_vector(text, 8))
        assert np.allclose(row.embedding, expected / np.linalg.norm(expected), atol=1e-6)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="Remote", input="x", dimensions=384)

    upstream.embedding_status = 401
    try:
        failed = httpx.post(server.base_url + "/v1/embeddings", json={"model": "Remote", "input": "x"})
    finally:
        upstream.embedding_status = 200
    assert failed.status_code == 502 and "HTTP 401" in failed.json()["error"]["message"]
    assert SECRET not in failed.text and SECRET not in got.model_dump_json()
    assert SECRET not in server.log()


def test_upstream_ollama_embedder(server: ServerProcess, upstream: Upstream) -> None:
    before = len(upstream.requests)
    got = ollama.Client(host=server.base_url).embed(model="RemoteOllama", input=["one", "two"])
    seen = upstream.requests[before:]
    assert [r.path for r in seen] == ["/api/embed"] and seen[0].body["model"] == "nomic-embed-text"
    assert got.model == "RemoteOllama:latest"
    expected = np.array(scripted_vector("two", 8))
    assert np.allclose(got.embeddings[1], expected / np.linalg.norm(expected), atol=1e-6)


def test_embedding_runs_off_the_event_loop(server: ServerProcess) -> None:
    """A long embedding request (many long texts) leaves the server answering chat meanwhile."""
    texts = [f"{i} " + "a fairly long sentence about nothing much " * 40 for i in range(160)]
    done: dict[str, float] = {}

    def embed() -> None:
        response = httpx.post(server.base_url + "/v1/embeddings", json={"input": texts}, timeout=300)
        assert response.status_code == 200
        done["embed"] = time.monotonic()

    worker = threading.Thread(target=embed)
    worker.start()
    time.sleep(0.5)
    chat = httpx.post(server.base_url + "/v1/chat/completions", timeout=60,
                      json={"model": "Chat", "messages": [{"role": "user", "content": "hello"}]})
    answered = time.monotonic()
    worker.join(timeout=300)
    assert chat.status_code == 200
    assert "embed" in done and answered < done["embed"], "the chat answer waited for the embedding batch"


def test_strict_models_refuse_an_unknown_model(tmp_path: Path, isolated_cache: Path) -> None:
    proc = start_server_process("--strict-models", log_path=tmp_path / "server.log")
    try:
        response = httpx.post(proc.base_url + "/v1/embeddings", json={"model": "ghost", "input": "x"})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"
        ollama_response = httpx.post(proc.base_url + "/api/embed", json={"model": "ghost", "input": "x"})
        assert ollama_response.status_code == 404 and ollama_response.json() == {"error": "model 'ghost' not found"}
        assert httpx.post(proc.base_url + "/v1/embeddings", json={"model": "all-minilm", "input": "x"}).is_success
    finally:
        proc.stop()


def test_without_the_extra_the_server_answers_and_names_the_install(tmp_path: Path) -> None:
    """onnxruntime made unimportable in the server process (sitecustomize): chat still works, the model lists
    leave the built-in embedder out, and every embedding route says what to install."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['onnxruntime'] = None  # import fails\n")
    proc = start_server_process(log_path=tmp_path / "server.log", env={"PYTHONPATH": str(site)})
    try:
        chat = httpx.post(proc.base_url + "/v1/chat/completions",
                          json={"model": "default", "messages": [{"role": "user", "content": "hello"}]})
        assert chat.status_code == 200
        assert "all-minilm" not in [m["id"] for m in httpx.get(proc.base_url + "/v1/models").json()["data"]]
        assert "all-minilm:latest" not in [m["name"] for m in httpx.get(proc.base_url + "/api/tags").json()["models"]]
        for path, body in (("/v1/embeddings", {"input": "x"}), ("/api/embed", {"input": "x"}),
                           ("/v2/embed", {"texts": ["x"]}), ("/embed", {"inputs": "x"})):
            response = httpx.post(proc.base_url + path, json=body)
            assert response.status_code == 501, (path, response.text)
            assert "pip install 'persona-server[embeddings]'" in response.text, path
    finally:
        proc.stop()


# -- the vendor protocols, through their own SDKs ----------------------------------------------------------------


def _reference(client: openai.OpenAI, texts: list[str]) -> np.ndarray:
    reply = client.embeddings.create(model="all-minilm", input=texts, encoding_format="float")
    return np.array([d.embedding for d in reply.data])


def test_gemini_sdk_embed_content(client: openai.OpenAI, server: ServerProcess) -> None:
    from google import genai
    from google.genai import errors

    gemini = genai.Client(api_key="unused", http_options={"base_url": server.base_url})
    reply = gemini.models.embed_content(model="all-minilm", contents=[QUESTION, PARAPHRASE, UNRELATED])
    vectors = np.array([e.values for e in reply.embeddings or []])
    assert vectors.shape == (3, 384)
    assert np.allclose(vectors, _reference(client, [QUESTION, PARAPHRASE, UNRELATED]), atol=1e-5)
    single = httpx.post(server.base_url + "/v1beta/models/all-minilm:embedContent",
                        json={"content": {"parts": [{"text": QUESTION}]}}).json()
    assert cosine(np.array(single["embedding"]["values"]), vectors[0]) > 0.9999
    with pytest.raises(errors.ClientError) as info:
        gemini.models.embed_content(model="all-minilm", contents="x", config={"output_dimensionality": 64})
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")


def test_cohere_sdk_embed(client: openai.OpenAI, server: ServerProcess) -> None:
    import cohere

    co = cohere.ClientV2(api_key="unused", base_url=server.base_url)
    reply = co.embed(texts=[QUESTION, UNRELATED], model="all-minilm", input_type="search_query",
                     embedding_types=["float"])
    vectors = np.array(reply.embeddings.float_)
    assert np.allclose(vectors, _reference(client, [QUESTION, UNRELATED]), atol=1e-5)
    assert reply.texts == [QUESTION, UNRELATED] and reply.meta and reply.meta.billed_units
    with pytest.raises(cohere.BadRequestError):
        co.embed(texts=["x"], model="all-minilm", input_type="search_query", embedding_types=["int8"])


def test_huggingface_hub_feature_extraction(client: openai.OpenAI, server: ServerProcess) -> None:
    from huggingface_hub import InferenceClient
    from huggingface_hub.errors import HfHubHTTPError

    tei = InferenceClient(base_url=server.base_url + "/embed")
    one = tei.feature_extraction(QUESTION)
    assert one.shape == (1, 384) and one.dtype == np.float32
    assert cosine(one[0], _reference(client, [QUESTION])[0]) > 0.9999
    raw = httpx.post(server.base_url + "/embed", json={"inputs": [QUESTION, UNRELATED]}).json()
    assert np.array(raw).shape == (2, 384)
    # TEI's default: an input longer than the model's context is refused, in TGI's error shape.
    with pytest.raises(HfHubHTTPError) as info:
        tei.feature_extraction("lorem " * 400)
    assert info.value.response is not None and info.value.response.status_code == 422
    assert tei.feature_extraction("lorem " * 400, truncate=True).shape == (1, 384)
