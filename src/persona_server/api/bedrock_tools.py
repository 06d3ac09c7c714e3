"""Bedrock Converse's tools, to and from the tooling model (persona_server.tooling).

`toolConfig` holds `tools` (`{"toolSpec": {"name", "description", "inputSchema": {"json": schema}}}`) and
`toolChoice` (`{"auto": {}}`, `{"any": {}}`: a call is required, `{"tool": {"name"}}`). History carries
`toolUse` blocks (assistant) and `toolResult` blocks (user); the answer's calls are `toolUse` blocks with
`stopReason: "tool_use"`, streamed as `contentBlockStart` (id and name), `contentBlockDelta` with
`toolUse.input` fragments, and `contentBlockStop`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from persona_server.api.tools import MAX_TOOLS, Name, arguments_object, set_choice
from persona_server.query import Message, ToolTurn
from persona_server.tooling import ToolCall, Tooling, ToolSpec, json_text


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class InputSchema(_Body):
    json_: dict[str, Any] = Field(alias="json")


class ToolSpecBlock(_Body):
    name: Name
    description: str | None = None
    inputSchema: InputSchema | None = None


class BedrockTool(_Body):
    toolSpec: ToolSpecBlock | None = None
    cachePoint: dict[str, Any] | None = None  # a caching hint: nothing to honour


class NamedTool(_Body):
    name: Name


class ToolChoice(_Body):
    auto: dict[str, Any] | None = None
    any: dict[str, Any] | None = None
    tool: NamedTool | None = None


class ToolConfig(_Body):
    tools: Annotated[list[BedrockTool], Field(max_length=MAX_TOOLS)]
    toolChoice: ToolChoice | None = None


class ToolUse(_Body):
    toolUseId: str
    name: str
    input: dict[str, Any] | None = None


class ToolResultContent(_Body):
    text: str | None = None
    json_: Any = Field(default=None, alias="json")


class ToolResult(_Body):
    toolUseId: str
    content: Annotated[list[ToolResultContent], Field(max_length=100)] = Field(default_factory=list)
    status: str | None = None


def tooling(config: ToolConfig | None) -> Tooling | None:
    if config is None:
        return None
    specs = [ToolSpec(t.toolSpec.name, t.toolSpec.description or "",
                      t.toolSpec.inputSchema.json_ if t.toolSpec.inputSchema else None)
             for t in config.tools if t.toolSpec is not None]
    result = Tooling(tools=specs, choice_param="toolConfig.toolChoice")
    choice = config.toolChoice
    if choice is not None and choice.tool is not None:
        set_choice(result, None, function=choice.tool.name)
    elif choice is not None and choice.any is not None:
        set_choice(result, "required")
    return result


def block_messages(role: str, uses: list[ToolUse], results: list[ToolResult], text: str) -> list[Message]:
    """One message's turns: an assistant's tool uses as one turn with its calls; a user's tool results as a tool
    turn each, then its text if any."""
    if role == "assistant":
        calls = tuple(ToolCall(u.toolUseId, u.name, json_text(u.input or {})) for u in uses)
        return [ToolTurn("assistant", text, calls)]
    out: list[Message] = [ToolTurn("tool", _result_text(r), (), r.toolUseId) for r in results]
    if text or not out:
        out.append(Message(role, text))
    return out


def _result_text(result: ToolResult) -> str:
    return "\n".join(part.text if part.text is not None else json_text(part.json_)
                     for part in result.content)


def tool_use_blocks(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [{"toolUse": {"toolUseId": c.id, "name": c.name, "input": arguments_object(c.arguments)}}
            for c in calls]
