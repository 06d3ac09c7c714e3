"""Anthropic's Messages API: `POST /v1/messages`, `/v1/messages/count_tokens` (also under `/anthropic`).

The request becomes a `Query` (`system` as a system message, `max_tokens`, `stop_sequences`, `temperature`,
`top_p`, `metadata.user_id` as the user); the answer a `message` with one text block, `stop_reason` `end_turn`,
`max_tokens` or `stop_sequence`, and usage. A stream is SSE with named events in Anthropic's order (see
`message_events`). Client tools (`tools`, `tool_choice`, `tool_use` / `tool_result` blocks) are in
api/anthropic_tools.py. What we cannot honour (images, thinking, `top_k`) is refused with a 400. The request
model and the event sequence are shared with Bedrock's `invoke`, which takes the same body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from persona_server.api import anthropic_tools
from persona_server.api.context import json_response, new_id, read_model, server_state
from persona_server.api.errors import APIError, answer_error, register_error_format
from persona_server.api.schemas import MAX_STOP_SEQUENCES, StopSequence, UserId
from persona_server.api.streaming import (
    SSE_HEADERS,
    StreamFailure,
    sse_named_event,
    stop_reason,
    unless_disconnected,
    word_chunks,
)
from persona_server.api.tools import apply as apply_tooling
from persona_server.catalog import Catalog
from persona_server.chain import AnswerStream
from persona_server.limits import MAX_MESSAGES
from persona_server.persona import Persona
from persona_server.query import Message, Query
from persona_server.settings import Settings
from persona_server.text import count_tokens
from persona_server.tooling import ToolCallPiece

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def error_body(error: APIError) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(error.status, "api_error" if error.status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def anthropic_error(error: APIError) -> Response:
    return Response(orjson.dumps(error_body(error)), status_code=error.status, media_type="application/json")


# Every path of this protocol starts with one of these (see api/routing.py).
PREFIXES = ("/v1/messages", "/anthropic/")

register_error_format(anthropic_error, prefixes=PREFIXES)

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["type", "error"],
    "properties": {"type": {"const": "error"}, "error": {
        "type": "object", "required": ["type", "message"],
        "properties": {"type": {"type": "string"}, "message": {"type": "string"}}}},
}


# -- requests -------------------------------------------------------------------------------------------------


class _Body(BaseModel):
    # Unknown fields are refused: each names a feature (tools, thinking, ...) we would otherwise silently drop.
    model_config = ConfigDict(extra="forbid", strict=True)


class TextBlock(BaseModel):
    # Blocks may carry `cache_control` or `citations`, harmless to ignore; the block's type is checked below.
    model_config = ConfigDict(extra="ignore", strict=True)
    type: str
    text: str | None = None
    # tool_use blocks (assistant) and tool_result blocks (user); see api/anthropic_tools.py
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[dict[str, Any]] | None = None


_TOOL_BLOCKS = {"user": "tool_result", "assistant": "tool_use"}


def _text(blocks: str | list[TextBlock], where: str, role: str = "") -> str:
    if isinstance(blocks, str):
        return blocks
    tool_block = _TOOL_BLOCKS.get(role)
    for index, block in enumerate(blocks):
        if block.type == tool_block:
            continue
        if block.type != "text" or block.text is None:
            raise APIError(400, f"{where}[{index}]: content blocks of type '{block.type}' are not supported; "
                           "send text blocks", param=f"{where}[{index}].type")
    return "\n".join(block.text or "" for block in blocks if block.type == "text")


class InputMessage(_Body):
    role: Literal["user", "assistant"]
    content: str | list[TextBlock]


class Metadata(_Body):
    user_id: UserId | None = None


class ConversationRequest(_Body):
    """What a count_tokens request carries; a Messages request adds the generation fields."""

    model: str | None = None
    messages: Annotated[list[InputMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    system: str | list[TextBlock] | None = None

    def to_messages(self) -> list[Message]:
        messages = [Message("system", _text(self.system, "system"))] if self.system else []
        for i, m in enumerate(self.messages):
            text = _text(m.content, f"messages[{i}].content", m.role)
            if isinstance(m.content, list) and any(b.type in ("tool_use", "tool_result") for b in m.content):
                messages += anthropic_tools.block_messages(m.role, m.content, text)
            else:
                messages.append(Message(m.role, text))
        return messages


class MessagesRequest(ConversationRequest):
    max_tokens: Annotated[int, Field(ge=1)]
    stop_sequences: Annotated[list[StopSequence], Field(max_length=MAX_STOP_SEQUENCES)] | None = None
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    metadata: Metadata | None = None
    stream: bool = False
    # Hints about billing, caching and routing: nothing to honour here, nothing lost by ignoring them.
    service_tier: str | None = None
    cache_control: dict[str, Any] | None = None
    inference_geo: str | None = None
    speed: str | None = None
    anthropic_version: str | None = None  # Bedrock's invoke body names the API version in the body
    tools: anthropic_tools.AnthropicTools | None = None
    tool_choice: anthropic_tools.AnthropicToolChoice | None = None

    def query(self, messages: list[Message], settings: Settings) -> Query:
        return Query(
            messages=messages, lang=settings.lang, units=settings.units, max_tokens=self.max_tokens,
            temperature=self.temperature, top_p=self.top_p, stop=list(self.stop_sequences or []),
            user=self.metadata.user_id if self.metadata else None,
        )

    def apply_tools(self, persona: Persona, query: Query) -> None:
        """Put the client's tools on the query (api/tools.py: a 400 when the persona cannot honour them)."""
        if self.tools is not None or self.tool_choice is not None:
            apply_tooling(persona, query, anthropic_tools.tooling(self.tools, self.tool_choice))


def pick_persona(request: Request, model: str | None) -> Persona:
    state = server_state(request)
    persona = state.catalog.for_model(model, strict=state.settings.strict_models)
    if persona is None:
        raise APIError(404, f"The model '{model}' does not exist", param="model", code="model_not_found")
    return persona


# -- answers ----------------------------------------------------------------------------------------------------


def _stop_reason(stream: AnswerStream) -> str:
    if stream.finish_reason == "tool_calls":
        return "tool_use"
    return stop_reason(stream, end="end_turn", length="max_tokens", stop_sequence="stop_sequence")


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens}


def message_json(persona: Persona, text: str, stream: AnswerStream, input_tokens: int) -> dict[str, Any]:
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": persona.name,
        "content": _content(text, stream),
        "stop_reason": _stop_reason(stream),
        "stop_sequence": stream.stop_sequence,
        "usage": _usage(input_tokens, stream.tokens),
        "solver": stream.solver,
        "sources": [s.to_dict() for s in stream.sources],
    }


def _content(text: str, stream: AnswerStream) -> list[dict[str, Any]]:
    calls = stream.tool_calls
    if not calls:
        return [{"type": "text", "text": text}]
    return ([{"type": "text", "text": text}] if text else []) + anthropic_tools.tool_use_blocks(calls)


Event = tuple[str, dict[str, Any]]


async def message_events(persona: Persona, query: Query, input_tokens: int,
                         ping_interval: float) -> AsyncIterator[list[Event]]:
    """Anthropic's stream as batches of (event type, data): message_start, content_block_start, ping,
    content_block_delta..., content_block_stop, message_delta, message_stop; an empty batch when nothing came for
    `ping_interval` (time for a keep-alive); an `error` event, last, when the answer fails mid-way."""
    message = {
        "id": new_id("msg_"), "type": "message", "role": "assistant", "model": persona.name, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": _usage(input_tokens, 0),
    }
    text_block = ("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}})
    # With client tools the answer may be tool_use blocks alone: the text block opens with the first text.
    lazy = query.tooling is not None and bool(query.tooling.tools)
    yield [("message_start", {"type": "message_start", "message": message}),
           *([] if lazy else [text_block]), ("ping", {"type": "ping"})]
    blocks = 0 if lazy else 1  # content blocks opened; one at a time is open, and closes when the next opens
    text_index: int | None = None if lazy else 0
    calls: dict[int, int] = {}  # tool call index -> its block's index

    def stop_open() -> list[Event]:
        return [("content_block_stop", {"type": "content_block_stop", "index": blocks - 1})] if blocks else []

    stream = persona.stream(query)
    try:
        async for words in word_chunks(stream, ping_interval):
            if words is None:
                yield []
                continue
            batch: list[Event] = []
            for word in words:
                if type(word) is ToolCallPiece:
                    if word.index not in calls:
                        batch += stop_open()
                        calls[word.index], blocks = blocks, blocks + 1
                        batch.append(anthropic_tools.block_start(calls[word.index], word))
                    if word.arguments:
                        batch.append(anthropic_tools.json_delta(calls[word.index], word.arguments))
                    continue
                if text_index is None:
                    batch += stop_open()
                    text_index, blocks = blocks, blocks + 1
                    batch.append(("content_block_start", {**text_block[1], "index": text_index}))
                batch.append(("content_block_delta", {"type": "content_block_delta", "index": text_index,
                                                      "delta": {"type": "text_delta", "text": word}}))
            yield batch
    except StreamFailure as exc:  # the answer failed mid-way: say so in the stream, as Anthropic does
        yield [("error", error_body(answer_error(exc)))]
        return
    if blocks == 0:
        blocks = 1
        yield [text_block]
    yield [*stop_open(),
           ("message_delta", {"type": "message_delta",
                              "delta": {"stop_reason": _stop_reason(stream), "stop_sequence": stream.stop_sequence},
                              "usage": {"output_tokens": stream.tokens},
                              "solver": stream.solver, "sources": [s.to_dict() for s in stream.sources]}),
           ("message_stop", {"type": "message_stop"})]


async def _sse(events: AsyncIterator[list[Event]]) -> AsyncIterator[bytes]:
    async for batch in events:
        if not batch:
            yield sse_named_event("ping", {"type": "ping"})
        else:
            yield b"".join(sse_named_event(name, data) for name, data in batch)


def input_tokens(messages: list[Message]) -> int:
    return sum(count_tokens(m.content) for m in messages)


async def answer_text(request: Request, persona: Persona, query: Query) -> tuple[str, AnswerStream]:
    """A whole answer, cancelled if the client leaves first."""
    stream = persona.stream(query)
    return await unless_disconnected(request, stream.text()), stream


async def create_message(request: Request) -> Response:
    """Create a message (Anthropic Messages API), streamed or not"""
    body = await read_model(request, MessagesRequest)
    if body.model is None:
        raise APIError(400, "'model' is a required property", param="model")
    persona = pick_persona(request, body.model)
    settings = server_state(request).settings
    messages = body.to_messages()
    query = body.query(messages, settings)
    body.apply_tools(persona, query)
    if body.stream:
        events = message_events(persona, query, input_tokens(messages), settings.ping_interval)
        return StreamingResponse(_sse(events), media_type="text/event-stream", headers=SSE_HEADERS)
    text, stream = await answer_text(request, persona, query)
    return json_response(message_json(persona, text, stream, input_tokens(messages)))


async def count_message_tokens(request: Request) -> Response:
    """Count a message's input tokens"""
    body = await read_model(request, ConversationRequest)
    pick_persona(request, body.model)
    return json_response({"input_tokens": input_tokens(body.to_messages())})


# -- models -------------------------------------------------------------------------------------------------------


def _model(persona: Persona, created: int) -> dict[str, Any]:
    created_at = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": "model", "id": persona.name, "display_name": persona.name, "created_at": created_at}


def list_models(request: Request) -> Response:
    """Anthropic's paginated list: `limit` (1-1000, default 20), `after_id`, `before_id`."""
    state = server_state(request)
    catalog: Catalog = state.catalog
    params = request.query_params
    try:
        limit = int(params.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        return anthropic_error(APIError(400, "limit: Input should be an integer between 1 and 1000"))
    names = [p.name for p in catalog]
    start, end = 0, len(names)
    if "after_id" in params:
        start = names.index(params["after_id"]) + 1 if params["after_id"] in names else len(names)
    if "before_id" in params:
        end = names.index(params["before_id"]) if params["before_id"] in names else 0
        start = max(start, end - limit)
    page = [p for p in catalog][start:min(end, start + limit)]
    data = [_model(p, state.started) for p in page]
    return json_response({"data": data, "has_more": start + len(page) < end,
                          "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})


def retrieve_model(request: Request) -> Response:
    state = server_state(request)
    model_id = request.path_params["model_id"]
    persona = state.catalog.get(model_id) if model_id.strip() else None
    if persona is None:
        return anthropic_error(APIError(404, f"The model '{model_id}' does not exist"))
    return json_response(_model(persona, state.started))


async def _list_models(request: Request) -> Response:
    """The models, in Anthropic's list format"""
    return list_models(request)


async def _retrieve_model(request: Request) -> Response:
    """One model, in Anthropic's format"""
    return retrieve_model(request)


def routes() -> list[Route]:
    """Anthropic's routes, also under /anthropic; `GET /v1/models` answers in Anthropic's format when the request
    carries `anthropic-version` (see api/model_lists.py)."""
    table = [
        ("/v1/messages", create_message, ["POST"]),
        ("/v1/messages/count_tokens", count_message_tokens, ["POST"]),
    ]
    prefixed = [("/v1/models", _list_models, ["GET"]), ("/v1/models/{model_id:path}", _retrieve_model, ["GET"])]
    return ([Route(path, endpoint, methods=methods) for path, endpoint, methods in table]
            + [Route("/anthropic" + path, endpoint, methods=methods) for path, endpoint, methods in table + prefixed])
