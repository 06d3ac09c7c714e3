"""OpenAI's Responses API (`POST /v1/responses`), stateless.

`input` is a string or a list of message items; `instructions` becomes a system message. Nothing is stored:
`store: true` is accepted (clients send it by default) but the response says `"store": false`, and
`previous_response_id` / `conversation` are refused with a 400, since there is nothing to continue from. A client
keeps a conversation by resending its items, or lets the persona's memory do it by sending `user`.

Streams are SSE with event names (`event: <type>`) and a `sequence_number` on each event, in the order OpenAI
sends them: response.created, response.in_progress, response.output_item.added, response.content_part.added,
response.output_text.delta..., response.output_text.done, response.content_part.done,
response.output_item.done, then response.completed (or response.incomplete when `max_output_tokens` cut the
answer short). Sources with a URL become `url_citation` annotations; `solver` and `sources` are added to the
response object as on the other routes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from persona_server.api.context import json_response, new_id, read_body, server_state
from persona_server.api.errors import APIError, from_validation_error, parse_json
from persona_server.api.openai import pick_persona
from persona_server.api.schemas import Lenient, UserId
from persona_server.api.streaming import (
    SSE_HEADERS,
    SSE_PING,
    AnswerStreamingResponse,
    StreamFailure,
    responses_error,
    unless_disconnected,
    word_chunks,
)
from persona_server.chain import AnswerStream
from persona_server.limits import MAX_MESSAGES
from persona_server.persona import Persona
from persona_server.query import Message, Query
from persona_server.settings import Settings
from persona_server.text import count_tokens
from persona_server.timezones import TimezoneName

_ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = ("input_text", "output_text", "text")


class _Body(BaseModel):
    # Fields we do not use (`tools`, `reasoning`, `text`, `metadata`, ...) are accepted and ignored.
    model_config = ConfigDict(extra="ignore", strict=True)


class ContentPart(_Body):
    type: str
    text: str | None = None


class InputItem(_Body):
    type: Annotated[str, Lenient] = "message"
    role: str | None = None
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        # Only text parts carry words a solver can use; images and files are ignored.
        return "\n".join(part.text or "" for part in self.content if part.type in _TEXT_PARTS)


class ResponsesRequest(_Body):
    model: Annotated[str, Lenient] = ""
    # Items are validated one by one (see `items`), so an error names the item: `input[2].role`.
    input: str | list[Any]
    instructions: str | None = None
    max_output_tokens: Annotated[int, Field(ge=1), Lenient] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    user: UserId | None = None
    safety_identifier: UserId | None = None
    stream: bool | None = False
    store: bool | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    # Extensions: the language and units solvers should answer in.
    lang: str | None = None
    units: Literal["metric", "imperial"] | None = None
    timezone: TimezoneName | None = None  # the asker's IANA zone, for the clock

    @field_validator("input", mode="before")
    @classmethod
    def _text_or_items(cls, value: Any) -> Any:
        if not isinstance(value, str | list):
            raise ValueError("must be a string or a list of input items")
        if isinstance(value, list) and len(value) > MAX_MESSAGES:
            raise ValueError(f"at most {MAX_MESSAGES} input items")
        return value

    def items(self) -> list[InputItem]:
        items = []
        for index, raw in enumerate(self.input):
            if not isinstance(raw, dict):
                raise APIError(400, f"'input[{index}]' must be an object", param=f"input[{index}]",
                               code="invalid_type")
            try:
                items.append(InputItem.model_validate(raw))
            except ValidationError as exc:
                raise from_validation_error(exc, prefix=f"input[{index}]") from None
        return items

    def messages(self) -> list[Message]:
        messages = [Message("system", self.instructions)] if self.instructions else []
        if isinstance(self.input, str):
            messages.append(Message("user", self.input))
            return messages
        for index, item in enumerate(self.items()):
            if item.type != "message":
                raise APIError(400, f"input items of type '{item.type}' are not supported; send messages",
                               param=f"input[{index}].type", code="unsupported_value")
            if item.role not in _ROLES:
                raise APIError(400, f"'input[{index}].role' must be one of {', '.join(_ROLES)}",
                               param=f"input[{index}].role", code="invalid_value")
            messages.append(Message(item.role, item.text()))
        if not any(m.role == "user" for m in messages):
            raise APIError(400, "'input' must contain a user message", param="input", code="invalid_value")
        return messages

    def query(self, messages: list[Message], settings: Settings) -> Query:
        return Query(
            messages=messages,
            lang=self.lang or settings.lang,
            units=self.units or settings.units,
            max_tokens=self.max_output_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            user=self.user or self.safety_identifier or None,
            timezone=self.timezone,
        )


async def _validated(request: Request) -> ResponsesRequest:
    data = parse_json(await read_body(request))
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_json")
    try:
        body = ResponsesRequest.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    if body.previous_response_id:
        raise APIError(400, "Responses are not stored, so 'previous_response_id' cannot be continued; "
                            "send the conversation's items in 'input' instead.",
                       param="previous_response_id", code="unsupported_parameter")
    if body.conversation:
        raise APIError(400, "Conversations are not stored; send the conversation's items in 'input' instead.",
                       param="conversation", code="unsupported_parameter")
    return body


class _Response:
    """Builds the response object and its parts as the answer progresses."""

    def __init__(self, persona: Persona, body: ResponsesRequest, prompt_tokens: int) -> None:
        self.id = new_id("resp_")
        self.item_id = new_id("msg_")
        self.created_at = int(time.time())
        self.persona = persona
        self.body = body
        self.prompt_tokens = prompt_tokens

    def annotations(self, stream: AnswerStream, text: str) -> list[dict[str, Any]]:
        return [{"type": "url_citation", "start_index": 0, "end_index": len(text), "title": s.title, "url": s.url}
                for s in stream.sources if s.url]

    def part(self, text: str, annotations: list[dict[str, Any]]) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}

    def item(self, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.item_id, "type": "message", "status": status, "role": "assistant", "content": content}

    def response(self, status: str, output: list[dict[str, Any]], stream: AnswerStream | None = None,
                 error: dict[str, str] | None = None) -> dict[str, Any]:
        body = self.body
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        out: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "max_tool_calls": None,
            "model": self.persona.name,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            # Nothing is kept after the answer, whatever the request asked.
            "store": False,
            "temperature": body.temperature,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": body.top_p,
            "truncation": "disabled",
            "usage": None,
            "user": body.user,
            "metadata": body.metadata or {},
        }
        if stream is not None:
            out["completed_at"] = int(time.time()) if status == "completed" else None
            out["usage"] = {
                "input_tokens": self.prompt_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": stream.tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.prompt_tokens + stream.tokens,
            }
            out["solver"] = stream.solver
            out["sources"] = [s.to_dict() for s in stream.sources]
        return out

    def finished(self, stream: AnswerStream, text: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """The final status, content part and output item of a finished answer."""
        status = "incomplete" if stream.finish_reason == "length" else "completed"
        part = self.part(text, self.annotations(stream, text))
        return status, part, self.item(status, [part])


async def create_response(request: Request) -> Response:
    body = await _validated(request)
    persona = pick_persona(request, body.model)
    settings: Settings = server_state(request).settings
    messages = body.messages()
    query = body.query(messages, settings)
    built = _Response(persona, body, sum(count_tokens(m.content) for m in messages))
    if body.stream:
        events = _events(built, persona.stream(query), settings.ping_interval)
        return AnswerStreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
    stream = persona.stream(query)
    text = await unless_disconnected(request, stream.text())
    status, _, item = built.finished(stream, text)
    return json_response(built.response(status, [item], stream))


async def _events(built: _Response, stream: AnswerStream, ping_interval: float) -> AsyncIterator[bytes]:
    sequence = 0

    def event(kind: str, **data: Any) -> bytes:
        nonlocal sequence
        payload = {"type": kind, "sequence_number": sequence, **data}
        sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    where = {"item_id": built.item_id, "output_index": 0, "content_index": 0}
    yield event("response.created", response=built.response("in_progress", []))
    yield event("response.in_progress", response=built.response("in_progress", []))
    yield event("response.output_item.added", output_index=0, item=built.item("in_progress", []))
    yield event("response.content_part.added", **where, part=built.part("", []))
    parts: list[str] = []
    chunks = word_chunks(stream, ping_interval)
    try:
        async for words in chunks:
            if words is None:
                yield SSE_PING
                continue
            parts.extend(words)
            yield b"".join(event("response.output_text.delta", **where, delta=word, logprobs=[]) for word in words)
    except StreamFailure as exc:
        # What was sent stays in the output, marked incomplete; the client's stream helper raises on a failed
        # response (it never sees response.completed).
        item = built.item("incomplete", [built.part("".join(parts), [])])
        yield event("response.failed", response=built.response("failed", [item], stream, responses_error(exc)))
        return
    finally:
        await chunks.aclose()
    text = "".join(parts)
    status, part, item = built.finished(stream, text)
    yield event("response.output_text.done", **where, text=text, logprobs=[])
    yield event("response.content_part.done", **where, part=part)
    yield event("response.output_item.done", output_index=0, item=item)
    final = "response.completed" if status == "completed" else "response.incomplete"
    yield event(final, response=built.response(status, [item], stream))


async def retrieve_response(request: Request) -> Response:
    response_id = request.path_params["response_id"]
    raise APIError(404, f"No response with id '{response_id}': responses are not stored.",
                   param="response_id", code="not_found")


def routes() -> list[Route]:
    """Under /v1 and at the root, like the other OpenAI routes."""
    return [
        route
        for prefix in ("/v1", "")
        for route in (
            Route(f"{prefix}/responses", create_response, methods=["POST"]),
            Route(prefix + "/responses/{response_id:path}", retrieve_response, methods=["GET", "DELETE"]),
        )
    ]
