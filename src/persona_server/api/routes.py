"""The route table: every protocol's routes and request models, in one place.

The app serves these routes and `/openapi.json` describes them; a new protocol module adds one `Protocol` here.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from persona_server.api import (
    anthropic,
    bedrock,
    cohere,
    cohere_v1,
    embeddings,
    files,
    gemini,
    health,
    model_lists,
    observe,
    ollama,
    ollama_models,
    openai,
    personas,
    responses,
    tgi,
    vector_stores,
    vendor_embeddings,
    web,
)
from persona_server.api.context import json_response
from persona_server.api.openapi import Protocol, build_document
from persona_server.api.routing import PrefixedRoutes, lean_endpoints
from persona_server.api.schemas import ChatCompletionRequest, CompletionRequest

# Ollama's show reads only the model name from its body.
_MODEL_NAME_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"model": {"type": "string"}, "name": {"type": "string"}},
}


async def openapi_json(request: Request) -> Response:
    """The OpenAPI 3.1 description of every route"""
    return json_response(openapi_document())


def _server_routes() -> list[Route]:
    return [
        *health.routes(),
        Route("/metrics", observe.metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]


PROTOCOLS: tuple[Protocol, ...] = (
    Protocol("OpenAI", openai.routes,
             {openai.chat_completions: ChatCompletionRequest, openai.completions: CompletionRequest}),
    Protocol("OpenAI Responses", responses.routes, {responses.create_response: responses.ResponsesRequest}),
    Protocol("Ollama", ollama.routes, {
        ollama.chat: ollama.ChatRequest,
        ollama.generate: ollama.GenerateRequest,
        ollama.show: _MODEL_NAME_BODY,
    }),
    Protocol("OpenAI embeddings", embeddings.openai_routes,
             {embeddings.create_embeddings: embeddings.EmbeddingRequest}),
    Protocol("Ollama embeddings", embeddings.ollama_routes, {
        embeddings.embed: embeddings.OllamaEmbedRequest,
        embeddings.embeddings: embeddings.OllamaEmbeddingsRequest,
    }),
    Protocol("Ollama models", ollama_models.routes, {ollama_models.pull: _MODEL_NAME_BODY}),
    Protocol("Cohere", cohere.routes, {cohere.chat_v2: cohere.V2ChatRequest},
             error=("CohereError", cohere.ERROR_SCHEMA)),
    Protocol("Cohere v1", cohere_v1.routes,
             {cohere_v1.chat: cohere_v1.V1ChatRequest, cohere_v1.generate: cohere_v1.V1GenerateRequest},
             error=("CohereError", cohere.ERROR_SCHEMA)),
    Protocol("Hugging Face TGI", tgi.routes, {
        tgi.generate: tgi.TGIGenerateRequest,
        tgi.generate_stream: tgi.TGIGenerateRequest,
        tgi.compat_generate: tgi.TGIGenerateRequest,
    }, error=("TGIError", tgi.ERROR_SCHEMA)),
    Protocol("Hugging Face TEI", vendor_embeddings.tei_routes,
             {vendor_embeddings.tei_embed: vendor_embeddings.TEIEmbedRequest}, error=("TGIError", tgi.ERROR_SCHEMA)),
    Protocol("Cohere embeddings", vendor_embeddings.cohere_routes,
             {vendor_embeddings.cohere_embed: vendor_embeddings.CohereEmbedRequest},
             error=("CohereError", cohere.ERROR_SCHEMA)),
    Protocol("Server", _server_routes, open_paths=frozenset({"/health", "/openapi.json"})),
    Protocol("Chat page", web.routes, open_paths=web.OPEN_PATHS),
    Protocol("Personas", personas.routes),
    Protocol("Anthropic", anthropic.routes, {
        anthropic.create_message: anthropic.MessagesRequest,
        anthropic.count_message_tokens: anthropic.ConversationRequest,
    }, prefixes=anthropic.PREFIXES, error=("AnthropicError", anthropic.ERROR_SCHEMA)),
    Protocol("Gemini", gemini.routes, {
        gemini.generate_content: gemini.GenerateRequest,
        gemini.stream_generate_content: gemini.GenerateRequest,
        gemini.count_content_tokens: gemini.CountTokensRequest,
    }, prefixes=gemini.PREFIXES, error=("GeminiError", gemini.ERROR_SCHEMA)),
    Protocol("Gemini embeddings", vendor_embeddings.gemini_routes, {
        vendor_embeddings.embed_content: vendor_embeddings.EmbedContentRequest,
        vendor_embeddings.batch_embed_contents: vendor_embeddings.BatchEmbedContentsRequest,
    }, prefixes=gemini.PREFIXES, error=("GeminiError", gemini.ERROR_SCHEMA)),
    Protocol("Bedrock", bedrock.routes, {
        bedrock.converse: bedrock.ConverseRequest,
        bedrock.converse_stream: bedrock.ConverseRequest,
        bedrock.invoke: anthropic.MessagesRequest,
        bedrock.invoke_stream: anthropic.MessagesRequest,
    }, prefixes=bedrock.PREFIXES, error=("BedrockError", bedrock.ERROR_SCHEMA)),
    Protocol("OpenAI Files and Vector Stores", lambda: [*files.routes(), *vector_stores.routes()], {
        vector_stores.create_store: vector_stores.CreateStoreRequest,
        vector_stores.attach_file: vector_stores.AttachFileRequest,
        vector_stores.search: vector_stores.SearchRequest,
    }, prefixes=files.PREFIXES),
)


def flat_routes() -> list[Route]:
    """Every route of every protocol, in the table's order (what /openapi.json and the metrics' labels see)."""
    return [route for protocol in PROTOCOLS for route in protocol.routes()]


def all_routes() -> list[BaseRoute]:
    """The app's routes. Vendor protocols come first, each as one group behind a prefix test (nearly free for
    the other routes, see api/routing.py); then `/v1/models` answering in the asking SDK's format; then the rest.
    """
    groups: list[BaseRoute] = [PrefixedRoutes(p.prefixes, p.routes()) for p in PROTOCOLS if p.prefixes]
    rest = [route for protocol in PROTOCOLS if not protocol.prefixes for route in protocol.routes()]
    routes = [*groups, *model_lists.routes(), *rest]
    lean_endpoints(routes)
    return routes


def open_paths() -> frozenset[str]:
    return frozenset().union(*(protocol.open_paths for protocol in PROTOCOLS))


@cache
def openapi_document() -> dict[str, Any]:
    return build_document(PROTOCOLS)
