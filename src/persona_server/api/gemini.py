"""Google's Gemini API: `models/{model}:generateContent`, `:streamGenerateContent`, `:countTokens` and the model
list, under `/v1beta` and `/v1` (the `google-genai` SDK's default version), also under `/gemini/...`.

`contents` (roles `user` / `model`, text parts) and `systemInstruction` become the query's messages;
`generationConfig`'s `maxOutputTokens`, `stopSequences`, `temperature` and `topP` its limits (`candidateCount` 1
only). The answer is `candidates[0].content.parts[0].text` with `finishReason` `STOP` or `MAX_TOKENS` (Gemini has
no stop-sequence reason) and `usageMetadata`; `solver` and `sources` are added at the top. A stream is SSE with
`alt=sse`, else one JSON array written as it grows. What we cannot honour (tools, safety settings, images, JSON
schemas) is refused with a 400. Errors are `{"error": {"code", "message", "status"}}`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from persona_server.api.context import json_response, new_id, read_model, server_state
from persona_server.api.errors import APIError, answer_error, register_error_format
from persona_server.api.schemas import MAX_STOP_SEQUENCES, StopSequence
from persona_server.api.streaming import SSE_HEADERS, StreamFailure, sse_event, unless_disconnected, word_chunks
from persona_server.chain import AnswerStream
from persona_server.limits import MAX_MESSAGES
from persona_server.persona import Persona
from persona_server.query import Message, Query
from persona_server.text import count_tokens

MAX_PARTS = 100
MAX_PAGE_SIZE = 1000
_METHODS = ["generateContent", "streamGenerateContent", "countTokens"]

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           409: "ALREADY_EXISTS", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 501: "UNIMPLEMENTED",
           503: "UNAVAILABLE"}


def error_body(error: APIError) -> dict[str, Any]:
    status = _STATUS.get(error.status, "INTERNAL" if error.status >= 500 else "INVALID_ARGUMENT")
    return {"error": {"code": error.status, "message": error.message, "status": status}}


def gemini_error(error: APIError) -> Response:
    return Response(orjson.dumps(error_body(error)), status_code=error.status, media_type="application/json")


# Every path of this protocol starts with one of these (see api/routing.py); under /v1 only
# `/v1/models/{model}:{method}` is Gemini's (OpenAI's `/v1/models/{id}` may hold a colon too: `llama3:latest`).
PREFIXES = ("/v1beta/", "/v1/models/", "/gemini/")
_METHOD_SUFFIXES = (":generateContent", ":streamGenerateContent", ":countTokens", ":embedContent",
                    ":batchEmbedContents")


def is_gemini_path(path: str) -> bool:
    return path.startswith(("/v1beta/", "/gemini/")) or (path.startswith("/v1/models/")
                                                          and path.endswith(_METHOD_SUFFIXES))


register_error_format(gemini_error, matches=is_gemini_path)

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message", "status"],
        "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "status": {"type": "string"}}}},
}


# -- requests -------------------------------------------------------------------------------------------------


class _Body(BaseModel):
    # Unknown fields are refused: each names a feature (tools, safety settings, ...) we would silently drop.
    model_config = ConfigDict(extra="forbid", strict=True)


class Part(_Body):
    text: str | None = None  # other kinds of part (images, files, function calls) are fields we refuse


class Content(_Body):
    role: Literal["user", "model"] | None = None
    parts: Annotated[list[Part], Field(max_length=MAX_PARTS)]

    def text(self) -> str:
        if any(part.text is None for part in self.parts):
            raise APIError(400, "Every part must be a text part.")
        return "".join(part.text or "" for part in self.parts)


class GenerationConfig(_Body):
    maxOutputTokens: Annotated[int, Field(ge=1)] | None = None
    stopSequences: Annotated[list[StopSequence], Field(max_length=MAX_STOP_SEQUENCES)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    topP: Annotated[float, Field(ge=0, le=1)] | None = None
    candidateCount: Literal[1] | None = None  # one answer per request
    responseMimeType: Literal["text/plain"] | None = None  # answers are plain text


class GenerateRequest(_Body):
    model: str | None = None  # the path names it; countTokens' generateContentRequest repeats it
    contents: Annotated[list[Content], Field(min_length=1, max_length=MAX_MESSAGES)]
    systemInstruction: Content | None = None
    generationConfig: GenerationConfig | None = None

    def to_messages(self) -> list[Message]:
        messages = [Message("system", self.systemInstruction.text())] if self.systemInstruction else []
        messages += [Message("assistant" if c.role == "model" else "user", c.text()) for c in self.contents]
        return messages

    def query(self, messages: list[Message], request: Request) -> Query:
        settings = server_state(request).settings
        config = self.generationConfig or GenerationConfig()
        return Query(messages=messages, lang=settings.lang, units=settings.units, max_tokens=config.maxOutputTokens,
                     temperature=config.temperature, top_p=config.topP, stop=list(config.stopSequences or []))


class CountTokensRequest(_Body):
    contents: Annotated[list[Content], Field(max_length=MAX_MESSAGES)] | None = None
    generateContentRequest: GenerateRequest | None = None

    def messages(self) -> list[Message]:
        if self.generateContentRequest is not None:
            return self.generateContentRequest.to_messages()
        return [Message("user", c.text()) for c in self.contents or []]


def _persona(request: Request, model: str) -> Persona:
    state = server_state(request)
    persona = state.catalog.for_model(model, strict=state.settings.strict_models)
    if persona is None:
        raise APIError(404, f"models/{model} is not found, or is not supported for generateContent.")
    return persona


# -- answers ----------------------------------------------------------------------------------------------------


def _finish_reason(stream: AnswerStream) -> str:
    return "MAX_TOKENS" if stream.finish_reason == "length" else "STOP"


def _usage(prompt_tokens: int, output_tokens: int) -> dict[str, int]:
    return {"promptTokenCount": prompt_tokens, "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens}


def _response(persona: Persona, response_id: str, text: str, finish: dict[str, Any] | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    data: dict[str, Any] = {"candidates": [candidate], "modelVersion": persona.name, "responseId": response_id}
    if finish is not None:
        candidate["finishReason"] = finish.pop("finishReason")
        data.update(finish)
    return data


def _finish(stream: AnswerStream, prompt_tokens: int) -> dict[str, Any]:
    return {"finishReason": _finish_reason(stream), "usageMetadata": _usage(prompt_tokens, stream.tokens),
            "solver": stream.solver, "sources": [s.to_dict() for s in stream.sources]}


async def _chunks(persona: Persona, query: Query, prompt_tokens: int,
                  ping_interval: float) -> AsyncIterator[dict[str, Any] | None]:
    """The stream's responses, one per batch of words (None: time for a keep-alive); the last one carries the
    finish reason and usage; an `{"error"}` object ends a stream whose answer failed mid-way."""
    response_id = new_id("")[:24]
    stream = persona.stream(query)
    try:
        async for words in word_chunks(stream, ping_interval):
            yield None if words is None else _response(persona, response_id, "".join(words))
    except StreamFailure as exc:
        yield error_body(answer_error(exc))
        return
    yield _response(persona, response_id, "", _finish(stream, prompt_tokens))


async def _sse(chunks: AsyncIterator[dict[str, Any] | None]) -> AsyncIterator[bytes]:
    # The keep-alive is a blank line: google-genai reads an SSE comment line (`: ping`) as broken JSON.
    async for chunk in chunks:
        yield b"\n" if chunk is None else sse_event(chunk)


async def _json_array(chunks: AsyncIterator[dict[str, Any] | None]) -> AsyncIterator[bytes]:
    """Without `alt=sse`, Gemini streams one JSON array, element by element; whitespace keeps it alive."""
    separator = b"["
    async for chunk in chunks:
        if chunk is None:
            yield b"\n"
        else:
            yield separator + orjson.dumps(chunk)
            separator = b",\r\n"
    yield b"]" if separator != b"[" else b"[]"


async def generate(request: Request, persona: Persona, body: GenerateRequest) -> Response:
    messages = body.to_messages()
    query = body.query(messages, request)
    stream = persona.stream(query)
    text = await unless_disconnected(request, stream.text())
    prompt_tokens = sum(count_tokens(m.content) for m in messages)
    return json_response(_response(persona, new_id("")[:24], text, _finish(stream, prompt_tokens)))


def stream_generate(request: Request, persona: Persona, body: GenerateRequest) -> Response:
    messages = body.to_messages()
    prompt_tokens = sum(count_tokens(m.content) for m in messages)
    chunks = _chunks(persona, body.query(messages, request), prompt_tokens,
                     server_state(request).settings.ping_interval)
    if request.query_params.get("alt") == "sse":
        return StreamingResponse(_sse(chunks), media_type="text/event-stream", headers=SSE_HEADERS)
    return StreamingResponse(_json_array(chunks), media_type="application/json")


async def generate_content(request: Request) -> Response:
    """Generate content (Gemini API)"""
    body = await read_model(request, GenerateRequest)
    return await generate(request, _persona(request, request.path_params["model"]), body)


async def stream_generate_content(request: Request) -> Response:
    """Generate content as a stream: SSE with `alt=sse`, else one JSON array"""
    body = await read_model(request, GenerateRequest)
    return stream_generate(request, _persona(request, request.path_params["model"]), body)


async def count_content_tokens(request: Request) -> Response:
    """Count the tokens of contents"""
    counted = await read_model(request, CountTokensRequest)
    _persona(request, request.path_params["model"])
    return json_response({"totalTokens": sum(count_tokens(m.content) for m in counted.messages())})


# -- models -------------------------------------------------------------------------------------------------------


def _model(persona: Persona) -> dict[str, Any]:
    return {
        "name": f"models/{persona.name}", "version": "1", "displayName": persona.name,
        "description": f"The {persona.name} persona: {', '.join(persona.spec.solvers)}",
        "inputTokenLimit": 1_000_000, "outputTokenLimit": 1_000_000, "supportedGenerationMethods": _METHODS,
    }


def list_models(request: Request) -> Response:
    """Gemini's paginated list: `pageSize` (default 50, at most 1000) and `pageToken` (where the page starts)."""
    params = request.query_params
    try:
        size = int(params.get("pageSize") or 50)
        start = int(params.get("pageToken") or 0)
    except ValueError:
        return gemini_error(APIError(400, "pageSize and pageToken must be integers."))
    if size < 1 or start < 0:
        return gemini_error(APIError(400, "pageSize must be positive and pageToken a token from a previous page."))
    personas = list(server_state(request).catalog)
    end = start + min(size, MAX_PAGE_SIZE)
    data: dict[str, Any] = {"models": [_model(p) for p in personas[start:end]]}
    if end < len(personas):
        data["nextPageToken"] = str(end)
    return json_response(data)


def retrieve_model(request: Request) -> Response:
    name = request.path_params.get("model_id") or request.path_params.get("target", "")
    name = name.removeprefix("models/")
    persona = server_state(request).catalog.get(name) if name.strip() else None
    if persona is None:
        return gemini_error(APIError(404, f"models/{name} is not found."))
    return json_response(_model(persona))


async def _list_models(request: Request) -> Response:
    """The models, in Gemini's format"""
    return list_models(request)


async def _retrieve_model(request: Request) -> Response:
    """One model, in Gemini's format"""
    return retrieve_model(request)


def routes() -> list[Route]:
    """Under /v1beta, /v1 and /gemini/...; `GET /v1/models[/{id}]` answers in Gemini's format when the request
    carries Gemini's key (see api/model_lists.py)."""
    methods = [(":generateContent", generate_content), (":streamGenerateContent", stream_generate_content),
               (":countTokens", count_content_tokens)]
    out = [Route(prefix + "/models/{model}" + method, endpoint, methods=["POST"])
           for prefix in ("/v1beta", "/v1", "/gemini/v1beta", "/gemini/v1") for method, endpoint in methods]
    for prefix in ("/v1beta", "/gemini/v1beta", "/gemini/v1"):
        out += [Route(prefix + "/models", _list_models, methods=["GET"]),
                Route(prefix + "/models/{target:path}", _retrieve_model, methods=["GET"])]
    return out
