"""Client tools and answer formats on the wire: what every protocol shares when it reads and writes them.

Each protocol reads its own spelling of tools, tool choice and format into a `Tooling` (persona_server.tooling),
then calls `apply` before the answer begins: it enforces the rules that make a 400 (a named function missing
from `tools`; a requirement none of the persona's solvers can meet), in the protocol's error format, naming the
field as the client wrote it. OpenAI's chat shapes live here too: the Responses API, Ollama and the OpenAI
solver speak them (or nearly).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from persona_server.api.errors import APIError
from persona_server.tooling import JSON, TOOLS, OutputFormat, ToolCall, Tooling, ToolSpec, invalid_schema

if TYPE_CHECKING:
    from persona_server.persona import Persona
    from persona_server.query import Query

# As OpenAI: at most 128 functions in one request.
MAX_TOOLS = 128
# Longest tool or schema name (OpenAI allows 64; a little slack for other protocols).
MAX_NAME = 128

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
JSONObject = dict[str, Any]


def apply(persona: Persona, query: Query, tooling: Tooling | None) -> None:
    """Put the request's tooling on `query`, or answer 400: a named function not in `tools`, or a requirement
    (a tool call, a JSON answer) that no solver of the persona can meet, is refused before anything runs."""
    if tooling is None:
        return
    try:
        settled = tooling.settle()
    except ValueError as exc:
        raise APIError(400, f"Invalid value for '{tooling.choice_param}': {exc}.", param=tooling.choice_param,
                       code="invalid_value") from None
    query.tooling = settled
    if settled is None or not settled.needs:
        return
    output = settled.output
    if output is not None and output.kind == "json_schema" and output.strict and output.schema is not None:
        # A schema that answers must validate against has to be one: the client's mistake, said up front.
        problem = invalid_schema(output.schema)
        if problem is not None:
            raise APIError(400, f"Invalid schema in '{settled.format_param}': {problem[:300]}",
                           param=settled.format_param, code="invalid_value")
    solvers = [slot.solver for slot in persona.slots
               if slot.solver is not None and slot.state not in ("error", "disabled")]
    if any(settled.needs <= solver.supports for solver in solvers):
        return
    if JSON in settled.needs and not any(JSON in solver.supports for solver in solvers):
        param, what = settled.format_param, "answer in JSON"
    elif TOOLS in settled.needs and not any(TOOLS in solver.supports for solver in solvers):
        param, what = settled.choice_param, "call the client's tools"
    else:
        param, what = settled.format_param, "call tools and answer in JSON"
    raise APIError(400, f"The persona '{persona.name}' cannot honour '{param}': none of its solvers can {what}. "
                   "Ask without it, or use a persona with an LLM solver that supports it.", param=param,
                   code="unsupported_value")


# -- OpenAI chat shapes -------------------------------------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class FunctionDef(_Wire):
    name: Name
    description: str | None = None
    parameters: JSONObject | None = None
    strict: bool | None = None


class ChatTool(_Wire):
    type: str = "function"
    function: FunctionDef | None = None


class NamedFunction(_Wire):
    name: Name


class ChatToolChoice(_Wire):
    type: Literal["function"] = "function"
    function: NamedFunction


class CalledFunction(_Wire):
    name: str = ""
    arguments: str = ""


class MessageToolCall(_Wire):
    id: str = ""
    type: str = "function"
    function: CalledFunction


class JSONSchemaFormat(_Wire):
    name: Name = "response"
    schema_: JSONObject | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(_Wire):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


ChatTools = Annotated[list[ChatTool], Field(max_length=MAX_TOOLS)]
ToolChoice = Literal["auto", "none", "required"] | ChatToolChoice


def chat_tooling(tools: list[ChatTool] | None, tool_choice: ToolChoice | None, parallel: bool | None,
                 response_format: ResponseFormat | None, *, format_param: str = "response_format") -> Tooling | None:
    """OpenAI chat's `tools`, `tool_choice`, `parallel_tool_calls` and `response_format`, or None for none."""
    if tools is None and tool_choice is None and response_format is None:
        return None
    specs = [ToolSpec(t.function.name, t.function.description or "", t.function.parameters, t.function.strict)
             for t in tools or () if t.type == "function" and t.function is not None]
    output = None
    if response_format is not None:
        schema = response_format.json_schema
        if response_format.type == "json_schema" and (schema is None or schema.schema_ is None):
            raise APIError(400, f"'{format_param}.json_schema.schema' is required for type 'json_schema'.",
                           param=f"{format_param}.json_schema", code="invalid_value")
        output = OutputFormat(response_format.type, schema.schema_ if schema else None,
                              schema.name if schema else None, bool(schema and schema.strict),
                              schema.description if schema else None)
    tooling = Tooling(tools=specs, parallel_tool_calls=parallel, output=output, format_param=format_param)
    set_choice(tooling, tool_choice.function.name if isinstance(tool_choice, ChatToolChoice) else tool_choice)
    return tooling


def set_choice(tooling: Tooling, choice: str | None, *, function: str | None = None) -> None:
    """`auto`, `none`, `required`, or (any other string, or `function`) the name of the one function to call."""
    if choice is None and function is None:
        return
    if function is not None:
        tooling.choice, tooling.function = "function", function
    elif choice in ("auto", "none", "required"):
        tooling.choice = choice  # type: ignore[assignment]
    else:
        tooling.choice, tooling.function = "function", choice
    if tooling.choice != "auto" and not tooling.tools and tooling.choice != "none":
        raise APIError(400, f"'{tooling.choice_param}' is only allowed when 'tools' are given.",
                       param=tooling.choice_param, code="invalid_value")


def message_calls(calls: list[MessageToolCall] | None) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(c.id, c.function.name, c.function.arguments or "{}") for c in calls or ())


def arguments_object(arguments: str) -> Any:
    """A call's arguments as a JSON value (Ollama and Anthropic carry objects, not text); {} when unparsable."""
    import orjson

    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
