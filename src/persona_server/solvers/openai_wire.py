"""OpenAI chat-completions on the wire, as the OpenAI solver speaks it to its upstream: the SSE stream's deltas,
a whole JSON answer, error bodies, and the request's spelling of client tools and answer formats.

Kept apart from the solver (solvers/openai_llm.py), which decides what to ask and what to do with the answer.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from persona_server import secrets
from persona_server.tooling import OutputFormat, ToolCall, ToolCallPiece, Tooling, ToolSpec


class UpstreamError(Exception):
    """The upstream could not give an answer; the message is safe to log (no key, no request body)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class CallSlot:
    """One tool call of an upstream round, as its fragments arrive."""

    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(slots=True)
class Turn:
    """What one upstream round produced besides the streamed text."""

    text: list[str] = field(default_factory=list)
    tool_calls: dict[int, CallSlot] = field(default_factory=dict)
    finished: bool = False  # the upstream said why it stopped (finish_reason): the stream was not cut off


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def safe(text: str, key: str | None) -> str:
    """Upstreams echo keys back in their errors ("Incorrect API key provided: sk-..."): mask them."""
    if key:
        text = text.replace(key, "***")
    return secrets.redact(text)


def status_message(response: httpx.Response, key: str | None) -> str:
    detail = ""
    try:
        payload = orjson.loads(response.content)
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        detail = error.get("message", "") if isinstance(error, dict) else str(error)
    except (orjson.JSONDecodeError, AttributeError):
        detail = response.text
    return safe(f"the upstream answered HTTP {response.status_code}: {str(detail)[:200]}", key)


def delta(data: str, turn: Turn, key: str | None) -> list[str | ToolCallPiece]:
    """One SSE event's text and tool-call fragments (indexed as the upstream numbers its calls); every call is
    also accumulated whole in `turn.tool_calls`, with an id made up when the upstream sent none."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError("the upstream sent a malformed event (not JSON)") from None
    if not isinstance(chunk, dict):
        raise UpstreamError("the upstream sent a malformed event")
    if chunk.get("error"):
        error = chunk["error"]
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        raise UpstreamError(safe(f"the upstream reported an error: {message[:200]}", key))
    choices = chunk.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return []  # usage chunks, keep-alives
    if choices[0].get("finish_reason"):
        turn.finished = True
    change = choices[0].get("delta") or {}
    pieces: list[str | ToolCallPiece] = []
    content = change.get("content")
    if isinstance(content, str) and content:
        pieces.append(content)
    for call in change.get("tool_calls") or []:
        index = call.get("index", len(turn.tool_calls))
        first = index not in turn.tool_calls
        slot = turn.tool_calls.setdefault(index, CallSlot())
        function = call.get("function") or {}
        name, arguments = function.get("name") or "", function.get("arguments") or ""
        slot.id = slot.id or call.get("id") or (new_call_id() if first else "")
        slot.name += name
        slot.arguments += arguments
        pieces.append(ToolCallPiece(index, slot.id if first else "", name, arguments))
    return pieces


def whole(raw: bytes, turn: Turn) -> list[str | ToolCallPiece]:
    """A whole (non-streamed) answer's text and tool calls."""
    try:
        payload = orjson.loads(raw)
        message = payload["choices"][0]["message"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        raise UpstreamError("the upstream sent a malformed answer") from None
    pieces: list[str | ToolCallPiece] = []
    content = message.get("content")
    if isinstance(content, str) and content:
        pieces.append(content)
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        slot = turn.tool_calls[index] = CallSlot(call.get("id") or new_call_id(), function.get("name", ""),
                                                 function.get("arguments", "") or "")
        pieces.append(ToolCallPiece(index, slot.id, slot.name, slot.arguments))
    return pieces


async def sse_events(response: httpx.Response) -> AsyncIterator[str]:
    """The payload of each `data:` line, as soon as the line is complete.

    Chat-completion streams put one JSON object on each data line; taking each line as an event (rather than
    waiting for the blank line that ends an SSE event) also copes with servers that leave the blank lines out.
    """
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, `: ping` comments, `event:` names
        payload = line[5:].strip()
        if payload:
            yield payload


# -- client tools and formats, as OpenAI's chat API spells them ------------------------------------------------


def tool_calls_json(calls: list[ToolCall] | tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    """Tool calls as an OpenAI chat message carries them."""
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls]


def tools_json(specs: list[ToolSpec]) -> list[dict[str, Any]]:
    """Tool definitions as OpenAI's chat API takes them."""
    out = []
    for spec in specs:
        function: dict[str, Any] = {"name": spec.name}
        if spec.description:
            function["description"] = spec.description
        if spec.parameters is not None:
            function["parameters"] = spec.parameters
        if spec.strict is not None:
            function["strict"] = spec.strict
        out.append({"type": "function", "function": function})
    return out


def tool_choice_json(tooling: Tooling) -> str | dict[str, Any]:
    if tooling.choice == "function":
        return {"type": "function", "function": {"name": tooling.function}}
    return tooling.choice


def response_format_json(output: OutputFormat) -> dict[str, Any]:
    if output.kind != "json_schema":
        return {"type": output.kind}
    schema: dict[str, Any] = {"name": output.name or "response", "schema": output.schema or {}, "strict": output.strict}
    if output.description:
        schema["description"] = output.description
    return {"type": "json_schema", "json_schema": schema}
