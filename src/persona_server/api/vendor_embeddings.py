"""Embeddings on the vendor protocols: Gemini's `models/{model}:embedContent` and `:batchEmbedContents`,
Cohere's `POST /v2/embed`, and Hugging Face Text Embeddings Inference's `POST /embed` (beside TGI's routes).

Each translates its JSON into texts, embeds them with the embedder `model` names (api/embedding_common.py) and
answers in the vendor's shape, errors in the vendor's format. What the built-in model cannot do (images, other
widths, un-normalised vectors, truncating the start) is refused with a 400, never approximated.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from persona_server.api import gemini, tgi
from persona_server.api.context import new_id, read_model
from persona_server.api.embedding_common import MAX_INPUTS, check_texts, embed_texts, pick_embedder
from persona_server.api.embeddings import check_dimensions, numpy_json, refuse_overlong
from persona_server.api.errors import APIError, register_error_format

# TEI's `/embed` answers in TGI's error format (`{"error", "error_type"}`, 422 for a bad request).
register_error_format(tgi.tgi_error, post_paths=("/embed",))


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


# -- Gemini ---------------------------------------------------------------------------------------------------


class GeminiPart(_Body):
    text: str | None = None
    # Gemini's own field names; present means a non-text part.
    inlineData: dict[str, Any] | None = None
    fileData: dict[str, Any] | None = None


class GeminiContent(_Body):
    parts: Annotated[list[GeminiPart], Field(min_length=1, max_length=gemini.MAX_PARTS)]
    role: str | None = None

    def text(self) -> str:
        if any(part.text is None for part in self.parts):
            raise APIError(400, "only text parts can be embedded", param="content.parts")
        return "\n".join(part.text or "" for part in self.parts)


class EmbedContentRequest(_Body):
    content: GeminiContent
    model: str | None = None
    taskType: str | None = None  # all-MiniLM-L6-v2 embeds every task alike
    title: str | None = None
    outputDimensionality: Annotated[int | None, Field(gt=0)] = None


class BatchEmbedContentsRequest(_Body):
    requests: Annotated[list[EmbedContentRequest], Field(min_length=1, max_length=MAX_INPUTS)]


def _gemini_embedder(request: Request, requested: list[EmbedContentRequest]) -> tuple[Any, list[str]]:
    model = request.path_params["model"]
    embedder, _ = pick_embedder(request, model, not_found=f"models/{model} is not found, or is not supported "
                                                           "for embedContent.")
    for item in requested:
        check_dimensions(embedder, item.outputDimensionality, param="outputDimensionality")
    return embedder, check_texts([item.content.text() for item in requested], "requests")


async def embed_content(request: Request) -> Response:
    """Embed one content (Gemini API)"""
    body = await read_model(request, EmbedContentRequest)
    embedder, texts = _gemini_embedder(request, [body])
    embedded = await embed_texts(request, embedder, texts)
    return numpy_json({"embedding": {"values": embedded.vectors[0]}})


async def batch_embed_contents(request: Request) -> Response:
    """Embed several contents (Gemini API)"""
    body = await read_model(request, BatchEmbedContentsRequest)
    embedder, texts = _gemini_embedder(request, body.requests)
    embedded = await embed_texts(request, embedder, texts)
    return numpy_json({"embeddings": [{"values": row} for row in embedded.vectors]})


def gemini_routes() -> list[Route]:
    """Under /v1beta and /v1 (the `google-genai` SDK's versions), also under /gemini/..."""
    methods = [(":embedContent", embed_content), (":batchEmbedContents", batch_embed_contents)]
    return [Route(prefix + "/models/{model}" + method, endpoint, methods=["POST"])
            for prefix in ("/v1beta", "/v1", "/gemini/v1beta", "/gemini/v1") for method, endpoint in methods]


# -- Cohere ---------------------------------------------------------------------------------------------------


class CohereContent(_Body):
    type: str
    text: str | None = None


class CohereInput(_Body):
    content: Annotated[list[CohereContent], Field(min_length=1, max_length=gemini.MAX_PARTS)]

    def text(self) -> str:
        if any(part.type != "text" or part.text is None for part in self.content):
            raise APIError(400, "only text content can be embedded; images are not supported", param="inputs")
        return "\n".join(part.text or "" for part in self.content)


class CohereEmbedRequest(_Body):
    model: str | None = None
    input_type: str | None = None  # search_document / search_query / ...: one model embeds all alike
    texts: Annotated[list[str] | None, Field(max_length=MAX_INPUTS)] = None
    images: list[str] | None = None
    inputs: Annotated[list[CohereInput] | None, Field(max_length=MAX_INPUTS)] = None
    embedding_types: list[str] | None = None
    truncate: Literal["NONE", "START", "END"] = "END"
    output_dimension: Annotated[int | None, Field(gt=0)] = None
    max_tokens: Annotated[int | None, Field(gt=0)] = None


async def cohere_embed(request: Request) -> Response:
    """Embed texts (Cohere API v2)"""
    body = await read_model(request, CohereEmbedRequest)
    if body.images:
        raise APIError(400, "images cannot be embedded by this server's models", param="images")
    for kind in body.embedding_types or ["float"]:
        if kind != "float":
            raise APIError(400, f"embedding type {kind!r} is not supported; use \"float\"", param="embedding_types")
    if body.truncate == "START":
        raise APIError(400, "truncate START is not supported; use END or NONE", param="truncate")
    if (body.texts is None) == (body.inputs is None):
        raise APIError(400, "give one of 'texts' or 'inputs'", param="texts")
    texts = check_texts(body.texts if body.texts is not None else [i.text() for i in body.inputs or []], "texts")
    embedder, _ = pick_embedder(request, body.model, not_found=f"model '{body.model}' not found")
    check_dimensions(embedder, body.output_dimension, param="output_dimension")
    if body.truncate == "NONE":
        await refuse_overlong(embedder, texts, limit=body.max_tokens)
    embedded = await embed_texts(request, embedder, texts)
    return numpy_json({
        "id": new_id(""),
        "response_type": "embeddings_by_type",
        "embeddings": {"float": embedded.vectors},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": embedded.tokens}},
    })


def cohere_routes() -> list[Route]:
    return [Route(prefix + "/v2/embed", cohere_embed, methods=["POST"]) for prefix in ("", "/cohere")]


# -- Text Embeddings Inference ----------------------------------------------------------------------------------


class TEIEmbedRequest(_Body):
    inputs: str | Annotated[list[str], Field(max_length=MAX_INPUTS)]
    model: str | None = None  # our extension, as on the TGI routes
    normalize: bool = True
    truncate: bool = False
    truncation_direction: Literal["right", "left", "Right", "Left"] = "right"
    prompt_name: str | None = None
    dimensions: Annotated[int | None, Field(gt=0)] = None


async def tei_embed(request: Request) -> Response:
    """Embed texts (Text Embeddings Inference)"""
    body = await read_model(request, TEIEmbedRequest)
    if not body.normalize:
        raise APIError(400, "only normalized embeddings are served: leave 'normalize' true", param="normalize")
    if body.prompt_name is not None:
        raise APIError(400, "this model has no prompts", param="prompt_name")
    if body.truncation_direction.lower() == "left":
        raise APIError(400, "truncating on the left is not supported", param="truncation_direction")
    texts = check_texts(body.inputs, "inputs")
    embedder, _ = pick_embedder(request, request.path_params.get("model") or body.model,
                                not_found=f"model '{body.model}' not found")
    check_dimensions(embedder, body.dimensions)
    if not body.truncate:
        # TEI's default: an input longer than the model's context is an error, not silently cut.
        await refuse_overlong(embedder, texts)
    embedded = await embed_texts(request, embedder, texts)
    return numpy_json(embedded.vectors)


def tei_routes() -> list[Route]:
    return [Route(prefix + "/embed", tei_embed, methods=["POST"]) for prefix in ("", "/tgi", "/tgi/models/{model}")]
