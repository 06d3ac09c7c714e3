"""Embeddings on the OpenAI and Ollama APIs: `POST /v1/embeddings`, Ollama's `POST /api/embed` and its legacy
`POST /api/embeddings`.

OpenAI: `input` a string or a list of strings, `encoding_format` `float` or `base64` (little-endian float32, as
OpenAI sends it; the `openai` SDK asks for base64 by default), `dimensions` refused unless it is the model's,
`user` ignored; `usage` counts the word pieces the model read. Ollama: `input` a string or a list, `truncate`
(default true; false refuses an input longer than the model's context), `options` and `keep_alive` ignored.
Which embedder `model` names: see api/embedding_common.py.
"""

from __future__ import annotations

import base64
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from persona_server.api.context import read_model
from persona_server.api.embedding_common import check_texts, embed_texts, pick_embedder
from persona_server.api.errors import APIError
from persona_server.api.schemas import Lenient, _Request
from persona_server.embedding import Embedded, Embedder

if TYPE_CHECKING:
    import numpy as np

_LITTLE_ENDIAN = sys.byteorder == "little"


def numpy_json(data: Any) -> Response:
    # orjson writes float32 arrays directly (and as their shortest float32 text): no list of Python floats.
    return Response(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


def check_dimensions(embedder: Embedder, dimensions: int | None, vectors: np.ndarray | None = None, *,
                     param: str = "dimensions") -> None:
    """A 400 when the client asks for another width than the model's (no model here can shorten its vectors)."""
    width = vectors.shape[1] if vectors is not None and vectors.size else embedder.dimensions
    if dimensions is not None and width and dimensions != width:
        raise APIError(400, f"'{param}' must be {width} for model '{embedder.name}', got {dimensions}",
                       param=param, code="invalid_value")


def _base64_rows(vectors: np.ndarray) -> list[str]:
    rows = vectors if _LITTLE_ENDIAN else vectors.astype("<f4")
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in rows]


# -- OpenAI ---------------------------------------------------------------------------------------------------


class EmbeddingRequest(_Request):
    input: str | list[str] | list[int] | list[list[int]]
    model: Annotated[str | None, Lenient] = None
    encoding_format: Annotated[Literal["float", "base64"], Lenient] = "float"
    dimensions: Annotated[int | None, Lenient, Field(gt=0)] = None
    user: Annotated[str | None, Lenient] = None


async def create_embeddings(request: Request) -> Response:
    """Embeddings of one or more texts (OpenAI)"""
    body = await read_model(request, EmbeddingRequest)
    texts = check_texts(body.input, "input")
    if any(not text for text in texts):
        raise APIError(400, "'input' must not contain empty strings", param="input", code="invalid_value")
    embedder, name = pick_embedder(request, body.model, not_found=f"The model '{body.model}' does not exist")
    check_dimensions(embedder, body.dimensions)
    embedded = await embed_texts(request, embedder, texts)
    check_dimensions(embedder, body.dimensions, embedded.vectors)
    rows: Any = _base64_rows(embedded.vectors) if body.encoding_format == "base64" else embedded.vectors
    return numpy_json({
        "object": "list",
        "data": [{"object": "embedding", "index": index, "embedding": row} for index, row in enumerate(rows)],
        "model": name,
        "usage": {"prompt_tokens": embedded.tokens, "total_tokens": embedded.tokens},
    })


def openai_routes() -> list[Route]:
    """Under /v1 and at the root, like the chat routes (openai 0.28 clients with a bare base URL)."""
    return [Route(prefix + "/embeddings", create_embeddings, methods=["POST"]) for prefix in ("/v1", "")]


# -- Ollama ---------------------------------------------------------------------------------------------------


class OllamaEmbedRequest(_Request):
    model: Annotated[str | None, Lenient] = None
    input: str | list[str] = Field(default_factory=list)
    truncate: Annotated[bool, Lenient] = True
    dimensions: Annotated[int | None, Lenient, Field(gt=0)] = None


class OllamaEmbeddingsRequest(_Request):
    model: Annotated[str | None, Lenient] = None
    prompt: Annotated[str, Lenient] = ""


def _ollama_name(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


async def _ollama_embed(request: Request, model: str | None, texts: list[str], truncate: bool) -> tuple[
        Embedder, str, Embedded]:
    embedder, name = pick_embedder(request, model, not_found=f"model '{model}' not found")
    if not truncate:
        await refuse_overlong(embedder, texts)
    return embedder, _ollama_name(name), await embed_texts(request, embedder, texts)


async def refuse_overlong(embedder: Embedder, texts: list[str], *, limit: int | None = None) -> None:
    """A 400 for a text longer than the model reads (or than `limit`), where the client asked not to truncate.

    Only the built-in model knows its context here; an upstream embedder decides for itself.
    """
    counts = getattr(embedder, "token_counts", None)
    context = getattr(embedder, "max_tokens", None)
    if counts is None or context is None:
        return
    limit = min(limit, context) if limit else context
    for index, count in enumerate(await counts(texts)):
        if count > limit:
            raise APIError(400, f"input {index} has {count} tokens, more than the limit of {limit}; "
                                "allow truncation to embed its beginning", param="input")


async def embed(request: Request) -> Response:
    """Embeddings of one or more texts (Ollama)"""
    started = time.perf_counter_ns()
    body = await read_model(request, OllamaEmbedRequest)
    texts = check_texts(body.input, "input", allow_empty_list=True)
    embedder, name, embedded = await _ollama_embed(request, body.model, texts, body.truncate)
    check_dimensions(embedder, body.dimensions, embedded.vectors)
    return numpy_json({
        "model": name,
        "embeddings": embedded.vectors,
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": 0,
        "prompt_eval_count": embedded.tokens,
    })


async def embeddings(request: Request) -> Response:
    """The embedding of one text (Ollama's legacy route)"""
    body = await read_model(request, OllamaEmbeddingsRequest)
    if not body.prompt:
        # As Ollama answers an empty prompt: no vector, no error.
        pick_embedder(request, body.model, not_found=f"model '{body.model}' not found")
        return numpy_json({"embedding": []})
    texts = check_texts(body.prompt, "prompt")
    _, _, embedded = await _ollama_embed(request, body.model, texts, True)
    return numpy_json({"embedding": embedded.vectors[0]})


def ollama_routes() -> list[Route]:
    return [
        Route("/api/embed", embed, methods=["POST"]),
        Route("/api/embeddings", embeddings, methods=["POST"]),
    ]
