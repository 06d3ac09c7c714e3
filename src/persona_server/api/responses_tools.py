"""The Responses API's tools and `text.format`, to and from the tooling model (persona_server.tooling).

Tools are flat (`{"type": "function", "name", "description", "parameters", "strict"}`), `tool_choice` is a
mode or `{"type": "function", "name"}`, the format is `text.format` (`text`, `json_object`, or `json_schema`
with `name`, `schema`, `strict`). History carries `function_call` items (`call_id`, `name`, `arguments`) and
`function_call_output` items (`call_id`, `output`); the answer's calls are `function_call` output items. What
the request asked is echoed in the response object as given (`text.format` included), never a default.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from persona_server.api.context import new_id
from persona_server.api.errors import APIError, from_validation_error
from persona_server.api.tools import MAX_TOOLS, Name, set_choice
from persona_server.query import Message, ToolTurn
from persona_server.tooling import OutputFormat, ToolCall, Tooling, ToolSpec


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class FunctionTool(_Body):
    type: str
    name: Name | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedFunction(_Body):
    type: Literal["function"]
    name: Name


class TextFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    name: Name | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextOptions(_Body):
    format: TextFormat | None = None


class FunctionCallItem(_Body):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str = "{}"


class FunctionOutputItem(_Body):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[Any] = ""


ResponsesTools = Annotated[list[FunctionTool], Field(max_length=MAX_TOOLS)]
ResponsesToolChoice = Literal["auto", "none", "required"] | NamedFunction


def tooling(tools: list[FunctionTool] | None, choice: ResponsesToolChoice | None,
            parallel: bool | None, text: TextOptions | None) -> Tooling | None:
    fmt = text.format if text is not None else None
    if tools is None and choice is None and fmt is None:
        return None
    specs = [ToolSpec(t.name, t.description or "", t.parameters, t.strict)
             for t in tools or () if t.type == "function" and t.name]
    output = None
    if fmt is not None:
        if fmt.type == "json_schema" and fmt.schema_ is None:
            raise APIError(400, "'text.format.schema' is required for type 'json_schema'.",
                           param="text.format.schema", code="invalid_value")
        output = OutputFormat(fmt.type, fmt.schema_, fmt.name, bool(fmt.strict), fmt.description)
    result = Tooling(tools=specs, parallel_tool_calls=parallel, output=output, format_param="text.format")
    set_choice(result, choice.name if isinstance(choice, NamedFunction) else choice)
    return result


def tool_item(kind: str, raw: Any, index: int) -> FunctionCallItem | FunctionOutputItem:
    """A `function_call` or `function_call_output` input item, validated (errors name `input[index]...`)."""
    model = FunctionCallItem if kind == "function_call" else FunctionOutputItem
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix=f"input[{index}]") from None


def call_message(items: list[FunctionCallItem]) -> Message:
    """Consecutive `function_call` items: one assistant turn that called those tools."""
    return ToolTurn("assistant", "", tuple(ToolCall(i.call_id, i.name, i.arguments or "{}") for i in items))


def output_message(item: FunctionOutputItem) -> Message:
    output = item.output if isinstance(item.output, str) else "\n".join(
        str(part.get("text", "")) for part in item.output if isinstance(part, dict))
    return ToolTurn("tool", output, (), item.call_id)


def call_item(call: ToolCall, status: str = "completed", item_id: str | None = None) -> dict[str, Any]:
    return {"id": item_id or new_id("fc_"), "type": "function_call", "status": status, "call_id": call.id,
            "name": call.name, "arguments": call.arguments}


def echo(body: Any) -> dict[str, Any]:
    """The response object's fields that say what was asked: tools, tool_choice, text.format."""
    fmt = body.text.format if body.text is not None and body.text.format is not None else None
    return {
        "parallel_tool_calls": body.parallel_tool_calls if body.parallel_tool_calls is not None else True,
        "text": {"format": fmt.model_dump(by_alias=True, exclude_none=True) if fmt else {"type": "text"}},
        "tool_choice": (body.tool_choice.model_dump() if isinstance(body.tool_choice, BaseModel)
                        else body.tool_choice or "auto"),
        "tools": [t.model_dump(exclude_none=True) for t in body.tools or ()],
    }
