"""Ollama's tools and `format`, to and from the tooling model (persona_server.tooling).

Ollama takes OpenAI's tool definitions, and `format` as "json" or a JSON schema (which Ollama enforces, so we
hold an answer to it: strict). Its tool calls carry arguments as an object and no id; tool results name the
tool (`tool_name`) rather than a call. Ids are made up here, so a history can go to an OpenAI upstream: the
n-th call of an assistant turn is `call_<turn>_<n>`, and a tool message answers the first call not yet
answered (of its `tool_name`, when it gives one). Ollama streams a tool call whole, in one chunk.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from persona_server.api.errors import APIError
from persona_server.api.tools import ChatTools, arguments_object, chat_tooling
from persona_server.query import Message, ToolTurn
from persona_server.tooling import OutputFormat, ToolCall, Tooling, json_text


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class CalledFunction(_Body):
    name: str
    arguments: dict[str, Any] | str | None = None


class OllamaToolCall(_Body):
    function: CalledFunction


Format = str | dict[str, Any] | None


def tooling(tools: ChatTools | None, fmt: Format) -> Tooling | None:
    """A request's `tools` and `format` ("" and null mean none)."""
    output = None
    if isinstance(fmt, dict):
        output = OutputFormat("json_schema", fmt, "response", strict=True)
    elif fmt:
        if fmt != "json":
            raise APIError(400, f"invalid format '{fmt[:40]}': use \"json\" or a JSON schema", param="format")
        output = OutputFormat("json_object")
    if tools is None and output is None:
        return None
    result = chat_tooling(tools, None, None, None) or Tooling()
    result.output, result.format_param = output, "format"
    return result


def messages(raw: list[Any]) -> list[Message]:
    """Ollama chat messages (with `tool_calls`, `tool_name`) as the model's messages."""
    out: list[Message] = []
    pending: list[ToolCall] = []
    for turn, message in enumerate(raw):
        content = message.content or ""
        if message.tool_calls:
            calls = tuple(ToolCall(f"call_{turn}_{n}", c.function.name, _arguments(c.function.arguments))
                          for n, c in enumerate(message.tool_calls))
            pending = list(calls)
            out.append(ToolTurn(message.role, content, calls))
        elif message.role == "tool":
            call = next((c for c in pending if message.tool_name in (None, c.name)), None)
            if call is not None:
                pending.remove(call)
            out.append(ToolTurn("tool", content, (), call.id if call else f"call_{turn}"))
        else:
            out.append(Message(message.role, content))
    return out


def _arguments(arguments: dict[str, Any] | str | None) -> str:
    if isinstance(arguments, str):
        return arguments or "{}"
    return json_text(arguments or {})


def tool_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """Tool calls as an Ollama message carries them: arguments as an object."""
    return [{"function": {"name": c.name, "arguments": arguments_object(c.arguments)}} for c in calls]
