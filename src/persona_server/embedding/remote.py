"""Upstream embedders a persona may name: an OpenAI-compatible `/v1/embeddings`, or Ollama's `/api/embed`.

The key travels only in the Authorization header and is registered as a secret, so it is masked in every log line
and never appears in an error we pass on. Upstream answers are checked (count, width, numbers) before use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from persona_server import secrets
from persona_server.embedding.base import Embedded, EmbeddingUnavailable, normalise_rows

if TYPE_CHECKING:
    import numpy

    from persona_server.solvers.base import SolverContext

UPSTREAM_BATCH = 256  # texts per upstream request: well under OpenAI's 2048, and a bounded body either way
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_TIMEOUT = httpx.Timeout(30.0, connect=3.0)


class RemoteEmbedder:
    """Shared by both upstream kinds: batching, bounds, checking and error masking."""

    def __init__(self, *, name: str, url: str, key: str | None, dimensions: int, context: SolverContext | None):
        self.name = name
        self.dimensions = dimensions
        self._key = key
        self._context = context
        self._own_client: httpx.AsyncClient | None = None
        self._basic: str | None = None
        if key:
            secrets.register(key)
        # Credentials in the URL leave it (httpx would send them in place of the key): Basic auth when no key.
        self._url, user, password = secrets.split_url_credentials(url)
        if user is not None:
            secrets.register_url_credentials(url)
            if not key:
                self._basic = "Basic " + secrets.basic_credentials(user, password)

    def _client(self) -> httpx.AsyncClient:
        if self._context is not None:
            return self._context.http
        if self._own_client is None:
            self._own_client = httpx.AsyncClient(timeout=_TIMEOUT)
        return self._own_client

    async def embed(self, texts: Sequence[str]) -> numpy.ndarray:
        return (await self.embed_with_usage(texts)).vectors

    async def embed_with_usage(self, texts: Sequence[str]) -> Embedded:
        import numpy as np

        rows: list[numpy.ndarray] = []
        tokens = 0
        for start in range(0, len(texts), UPSTREAM_BATCH):
            batch = list(texts[start : start + UPSTREAM_BATCH])
            vectors, used = await self._request(batch)
            rows.append(vectors)
            tokens += used
        if not rows:
            return Embedded(np.zeros((0, self.dimensions), dtype=np.float32), 0)
        return Embedded(np.concatenate(rows), tokens)

    async def _request(self, texts: list[str]) -> tuple[numpy.ndarray, int]:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        elif self._basic:
            headers["Authorization"] = self._basic
        try:
            async with self._client().stream(
                "POST", self._url, content=orjson.dumps(self._body(texts)), headers=headers, timeout=_TIMEOUT
            ) as response:
                body = await _read_bounded(response)
                if response.status_code >= 400:
                    raise EmbeddingUnavailable(
                        f"embedder {self.name!r} upstream answered HTTP {response.status_code}: "
                        f"{self._mask(body[:300].decode('utf-8', 'replace'))}"
                    )
        except httpx.HTTPError as exc:
            raise EmbeddingUnavailable(
                f"embedder {self.name!r} upstream failed: {self._mask(type(exc).__name__ + ' ' + str(exc))}"
            ) from None
        try:
            vectors, tokens = self._parse(orjson.loads(body), len(texts))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise EmbeddingUnavailable(f"embedder {self.name!r} upstream sent a malformed answer: {exc}") from None
        if self.dimensions and vectors.shape[1] != self.dimensions:
            raise EmbeddingUnavailable(
                f"embedder {self.name!r} upstream sent {vectors.shape[1]}-wide vectors, expected {self.dimensions}"
            )
        self.dimensions = int(vectors.shape[1])
        return normalise_rows(vectors), tokens

    def _mask(self, text: str) -> str:
        if self._key:
            text = text.replace(self._key, "***")
        return secrets.redact(text)

    def _body(self, texts: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def _parse(self, data: Any, count: int) -> tuple[numpy.ndarray, int]:
        raise NotImplementedError


class OpenAIEmbedder(RemoteEmbedder):
    """POST {api_url}/embeddings with `{"model", "input": [...]}`; rows come back with their `index`."""

    def _body(self, texts: list[str]) -> dict[str, Any]:
        return {"model": self.name, "input": texts, "encoding_format": "float"}

    def _parse(self, data: Any, count: int) -> tuple[numpy.ndarray, int]:
        items = sorted(data["data"], key=lambda item: int(item["index"]))
        if [int(item["index"]) for item in items] != list(range(count)):
            raise ValueError(f"expected {count} embeddings with indexes 0..{count - 1}")
        usage = data.get("usage") or {}
        return _matrix([item["embedding"] for item in items]), int(usage.get("prompt_tokens") or 0)


class OllamaEmbedder(RemoteEmbedder):
    """POST {ollama_url}/api/embed with `{"model", "input": [...]}` → `{"embeddings": [[...]]}`."""

    def _body(self, texts: list[str]) -> dict[str, Any]:
        return {"model": self.name, "input": texts}

    def _parse(self, data: Any, count: int) -> tuple[numpy.ndarray, int]:
        rows = data["embeddings"]
        if len(rows) != count:
            raise ValueError(f"expected {count} embeddings, got {len(rows)}")
        return _matrix(rows), int(data.get("prompt_eval_count") or 0)


def _matrix(rows: list[Any]) -> numpy.ndarray:
    import numpy as np

    matrix = np.asarray(rows, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] == 0 or not np.isfinite(matrix).all():
        raise ValueError("embeddings must be equal-length, non-empty lists of finite numbers")
    return matrix


async def _read_bounded(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise EmbeddingUnavailable(f"embedder upstream answer is over {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _endpoint(base: str, suffix: str) -> str:
    base = base.strip().rstrip("/")
    return base if base.endswith(suffix) else base + suffix


def remote_embedder(config: Mapping[str, Any], context: SolverContext | None) -> RemoteEmbedder:
    model = config.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError("an upstream embedder needs a 'model'")
    dimensions = config.get("dimensions") or 0
    if not isinstance(dimensions, int) or dimensions < 0:
        raise ValueError("embedder 'dimensions' must be a positive integer")
    key = config.get("key")
    if key is not None and not isinstance(key, str):
        raise ValueError("embedder 'key' must be a string")
    if config.get("api_url"):
        url = _endpoint(str(config["api_url"]), "/embeddings")
        return OpenAIEmbedder(name=model, url=url, key=key, dimensions=dimensions, context=context)
    url = _endpoint(str(config["ollama_url"]), "/api/embed")
    return OllamaEmbedder(name=model, url=url, key=key, dimensions=dimensions, context=context)
