"""Anthropic's tools, to and from the tooling model (persona_server.tooling); also Bedrock's `invoke`, which
takes the same body.

Tools are `{"name", "description", "input_schema"}`; `tool_choice` is `{"type": "auto" | "any" | "tool" |
"none", "name", "disable_parallel_tool_use"}` (`any` requires a call, `tool` names one). History carries
`tool_use` blocks in assistant turns and `tool_result` blocks in user turns; the answer's calls are `tool_use`
blocks with the arguments as an object, streamed as `input_json_delta` fragments, and `stop_reason: tool_use`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from persona_server.api.errors import APIError
from persona_server.api.tools import MAX_TOOLS, Name, arguments_object, set_choice
from persona_server.query import Message, ToolTurn
from persona_server.tooling import ToolCall, ToolCallPiece, Tooling, ToolSpec, json_text


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class AnthropicTool(_Body):
    name: Name
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None  # "custom" or absent for client tools; server tools (web_search_...) are refused


class AnthropicToolChoice(_Body):
    type: Literal["auto", "any", "tool", "none"]
    name: Name | None = None
    disable_parallel_tool_use: bool | None = None


AnthropicTools = Annotated[list[AnthropicTool], Field(max_length=MAX_TOOLS)]

_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def tooling(tools: list[AnthropicTool] | None, choice: AnthropicToolChoice | None) -> Tooling | None:
    if tools is None and choice is None:
        return None
    specs = []
    for index, tool in enumerate(tools or ()):
        if tool.type not in (None, "custom"):
            raise APIError(400, f"tools[{index}]: server tools of type '{tool.type}' are not supported; "
                           "send client tools (name, description, input_schema)", param=f"tools[{index}].type")
        specs.append(ToolSpec(tool.name, tool.description or "", tool.input_schema))
    parallel = None if choice is None or choice.disable_parallel_tool_use is None \
        else not choice.disable_parallel_tool_use
    result = Tooling(tools=specs, parallel_tool_calls=parallel)
    if choice is not None:
        if choice.type == "tool":
            if choice.name is None:
                raise APIError(400, "tool_choice.name is required for type 'tool'", param="tool_choice.name")
            set_choice(result, None, function=choice.name)
        else:
            set_choice(result, _CHOICES[choice.type])
    return result


def block_messages(role: str, blocks: list[Any], text: str) -> list[Message]:
    """One turn's messages: an assistant turn with `tool_use` blocks is one message carrying the calls; a user
    turn's `tool_result` blocks are a tool message each, before the turn's text (if any)."""
    if role == "assistant":
        calls = tuple(ToolCall(b.id or "", b.name or "", json_text(b.input or {}))
                      for b in blocks if b.type == "tool_use")
        return [ToolTurn("assistant", text, calls)]
    out: list[Message] = [ToolTurn("tool", _result_text(b.content), (), b.tool_use_id)
                          for b in blocks if b.type == "tool_result"]
    if text or not out:
        out.append(Message("user", text))
    return out


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(str(part.get("text", "")) for part in content or () if isinstance(part, dict))


def tool_use_blocks(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [{"type": "tool_use", "id": c.id, "name": c.name, "input": arguments_object(c.arguments)} for c in calls]


def block_start(index: int, piece: ToolCallPiece) -> tuple[str, dict[str, Any]]:
    return ("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
        "type": "tool_use", "id": piece.id or f"toolu_{piece.index}", "name": piece.name, "input": {}}})


def json_delta(index: int, fragment: str) -> tuple[str, dict[str, Any]]:
    return ("content_block_delta", {"type": "content_block_delta", "index": index,
                                    "delta": {"type": "input_json_delta", "partial_json": fragment}})
