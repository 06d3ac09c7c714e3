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

from persona_server.api import responses_tools as rt
from persona_server.api.context import json_response, new_id, read_model, server_state
from persona_server.api.errors import APIError, from_validation_error
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
from persona_server.api.tools import apply as apply_tooling
from persona_server.chain import AnswerStream
from persona_server.limits import MAX_MESSAGES
from persona_server.persona import Persona
from persona_server.query import Message, Query
from persona_server.settings import Settings
from persona_server.text import count_tokens
from persona_server.timezones import TimezoneName
from persona_server.tooling import ToolCall, ToolCallPiece, merge_calls

_ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = ("input_text", "output_text", "text")


class _Body(BaseModel):
    # Fields we do not use (`reasoning`, `include`, ...) are accepted and ignored.
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
    # Client tools and the answer's format (api/responses_tools.py).
    tools: rt.ResponsesTools | None = None
    tool_choice: rt.ResponsesToolChoice | None = None
    parallel_tool_calls: bool | None = None
    text: rt.TextOptions | None = None

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
        calls: list[rt.FunctionCallItem] = []  # consecutive function_call items make one assistant turn
        for index, item in enumerate(self.items()):
            if item.type in ("function_call", "function_call_output"):
                tool_item = rt.tool_item(item.type, self.input[index], index)
                if isinstance(tool_item, rt.FunctionCallItem):
                    calls.append(tool_item)
                    continue
                if calls:
                    messages.append(rt.call_message(calls))
                    calls = []
                messages.append(rt.output_message(tool_item))
                continue
            if calls:
                messages.append(rt.call_message(calls))
                calls = []
            if item.type != "message":
                raise APIError(400, f"input items of type '{item.type}' are not supported; send messages, "
                               "function_call and function_call_output items",
                               param=f"input[{index}].type", code="unsupported_value")
            if item.role not in _ROLES:
                raise APIError(400, f"'input[{index}].role' must be one of {', '.join(_ROLES)}",
                               param=f"input[{index}].role", code="invalid_value")
            messages.append(Message(item.role, item.text()))
        if calls:
            messages.append(rt.call_message(calls))
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
    body = await read_model(request, ResponsesRequest)  # straight from bytes, as every protocol
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
        self.asked = rt.echo(body)

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
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            # Nothing is kept after the answer, whatever the request asked.
            "store": False,
            "temperature": body.temperature,
            **self.asked,
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

    def output(self, stream: AnswerStream, text: str) -> tuple[str, list[dict[str, Any]]]:
        """A whole answer's status and output items: its message (left out when the answer is only tool
        calls), then a `function_call` item per call."""
        status, _, item = self.finished(stream, text)
        calls = [rt.call_item(call) for call in stream.tool_calls]
        return status, ([item] if text or not calls else []) + calls


async def create_response(request: Request) -> Response:
    body = await _validated(request)
    persona = pick_persona(request, body.model)
    settings: Settings = server_state(request).settings
    messages = body.messages()
    query = body.query(messages, settings)
    if body.tools is not None or body.tool_choice is not None or body.text is not None:
        apply_tooling(persona, query, rt.tooling(body.tools, body.tool_choice, body.parallel_tool_calls, body.text))
    built = _Response(persona, body, sum(count_tokens(m.content) for m in messages))
    if body.stream:
        events = _events(built, persona.stream(query), settings.ping_interval,
                         lazy=query.tooling is not None and bool(query.tooling.tools))
        return AnswerStreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
    stream = persona.stream(query)
    text = await unless_disconnected(request, stream.text())
    status, output = built.output(stream, text)
    return json_response(built.response(status, output, stream))


async def _events(built: _Response, stream: AnswerStream, ping_interval: float,
                  lazy: bool = False) -> AsyncIterator[bytes]:
    """The answer as Responses events. With client tools (`lazy`) the message item opens with the first text,
    since the answer may be tool calls only; each call is a `function_call` item of its own, opened with its
    first fragment and closed at the end, as OpenAI streams them."""
    sequence = 0

    def event(kind: str, **data: Any) -> bytes:
        nonlocal sequence
        payload = {"type": kind, "sequence_number": sequence, **data}
        sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    outputs = 0  # output items opened so far
    message_index: int | None = None
    calls: dict[int, tuple[int, str, list[ToolCallPiece]]] = {}  # call index -> output index, item id, pieces

    def open_message() -> bytes:
        nonlocal outputs, message_index
        message_index, outputs = outputs, outputs + 1
        where = {"item_id": built.item_id, "output_index": message_index, "content_index": 0}
        return (event("response.output_item.added", output_index=message_index, item=built.item("in_progress", []))
                + event("response.content_part.added", **where, part=built.part("", [])))

    def call_events(piece: ToolCallPiece) -> bytes:
        nonlocal outputs
        out = b""
        if piece.index not in calls:
            calls[piece.index] = (outputs, new_id("fc_"), [])
            outputs += 1
            index, item_id, _ = calls[piece.index]
            started = merge_calls([piece])[0]
            item = rt.call_item(ToolCall(started.id, started.name, ""), "in_progress", item_id)
            out += event("response.output_item.added", output_index=index, item=item)
        index, item_id, pieces = calls[piece.index]
        pieces.append(piece)
        if piece.arguments:
            out += event("response.function_call_arguments.delta", item_id=item_id, output_index=index,
                         delta=piece.arguments)
        return out

    yield event("response.created", response=built.response("in_progress", []))
    yield event("response.in_progress", response=built.response("in_progress", []))
    if not lazy:
        yield open_message()
    parts: list[str] = []
    chunks = word_chunks(stream, ping_interval)
    try:
        async for words in chunks:
            if words is None:
                yield SSE_PING
                continue
            out = b""
            for word in words:
                if type(word) is ToolCallPiece:
                    out += call_events(word)  # type: ignore[arg-type]
                    continue
                if message_index is None:
                    out += open_message()
                parts.append(word)  # type: ignore[arg-type]
                out += event("response.output_text.delta", item_id=built.item_id, output_index=message_index,
                             content_index=0, delta=word, logprobs=[])
            yield out
    except StreamFailure as exc:
        # What was sent stays in the output, marked incomplete; the client's stream helper raises on a failed
        # response (it never sees response.completed).
        item = built.item("incomplete", [built.part("".join(parts), [])])
        yield event("response.failed", response=built.response("failed", [item], stream, responses_error(exc)))
        return
    finally:
        await chunks.aclose()
    text = "".join(parts)
    if message_index is None and not calls:
        yield open_message()
    status, part, item = built.finished(stream, text)
    output: list[tuple[int, dict[str, Any]]] = []
    if message_index is not None:
        where = {"item_id": built.item_id, "output_index": message_index, "content_index": 0}
        yield event("response.output_text.done", **where, text=text, logprobs=[])
        yield event("response.content_part.done", **where, part=part)
        yield event("response.output_item.done", output_index=message_index, item=item)
        output.append((message_index, item))
    for index, item_id, pieces in calls.values():
        call = merge_calls(pieces)[0]
        yield event("response.function_call_arguments.done", item_id=item_id, output_index=index,
                    name=call.name, arguments=call.arguments)
        done = rt.call_item(call, "completed", item_id)
        yield event("response.output_item.done", output_index=index, item=done)
        output.append((index, done))
    final = "response.completed" if status == "completed" else "response.incomplete"
    yield event(final, response=built.response(status, [item for _, item in sorted(output, key=lambda o: o[0])],
                                               stream))


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
