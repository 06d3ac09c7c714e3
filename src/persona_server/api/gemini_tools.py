"""Gemini's function calling and JSON output, to and from the tooling model (persona_server.tooling).

Tools are `tools[].functionDeclarations[]` (`name`, `description`, `parameters` in Gemini's OpenAPI-style
Schema, or `parametersJsonSchema`); `toolConfig.functionCallingConfig.mode` is `AUTO`, `ANY` (a call is
required; `allowedFunctionNames` narrows it, one name names the function) or `NONE`. JSON output is
`generationConfig.responseMimeType: "application/json"`, with `responseSchema` (Gemini's Schema) or
`responseJsonSchema`; Gemini enforces the schema, so an answer is held to it (strict). History carries
`functionCall` parts (model turns) and `functionResponse` parts (user turns); Gemini has no call ids, so the
n-th call of a turn is `call_<turn>_<n>` and a response answers the first unanswered call of its name. The
answer's calls are `functionCall` parts (arguments as an object), sent whole.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from persona_server.api.errors import APIError
from persona_server.api.tools import MAX_TOOLS, Name, arguments_object, set_choice
from persona_server.query import Message, ToolTurn
from persona_server.tooling import OutputFormat, ToolCall, Tooling, ToolSpec, json_text

JSON_MIME = "application/json"


class _Body(BaseModel):
    # Hints beside what we read (a declaration's `behavior`, a call's `thoughtSignature`) change nothing here.
    model_config = ConfigDict(extra="ignore", strict=True)


class FunctionDeclaration(_Body):
    name: Name
    description: str | None = None
    parameters: dict[str, Any] | None = None
    parametersJsonSchema: dict[str, Any] | None = None


class GeminiTool(_Body):
    functionDeclarations: Annotated[list[FunctionDeclaration], Field(max_length=MAX_TOOLS)]


class FunctionCallingConfig(_Body):
    mode: Literal["AUTO", "ANY", "NONE", "MODE_UNSPECIFIED"] | None = None
    allowedFunctionNames: Annotated[list[Name], Field(max_length=MAX_TOOLS)] | None = None


class ToolConfig(_Body):
    functionCallingConfig: FunctionCallingConfig | None = None


class FunctionCall(_Body):
    name: str
    args: dict[str, Any] | None = None
    id: str | None = None


class FunctionResponse(_Body):
    name: str
    response: dict[str, Any] | None = None
    id: str | None = None


GeminiTools = Annotated[list[GeminiTool], Field(max_length=MAX_TOOLS)]


def json_schema(schema: Any) -> Any:
    """Gemini's Schema as JSON Schema: type names in lower case, `nullable` as a `null` type."""
    if isinstance(schema, list):
        return [json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: json_schema(value) for key, value in schema.items() if key not in ("nullable", "propertyOrdering")}
    if isinstance(out.get("type"), str):
        out["type"] = out["type"].lower()
        if schema.get("nullable"):
            out["type"] = [out["type"], "null"]
    return out


def tooling(tools: list[GeminiTool] | None, config: ToolConfig | None, mime: str | None,
            response_schema: dict[str, Any] | None, response_json_schema: dict[str, Any] | None) -> Tooling | None:
    calling = config.functionCallingConfig if config is not None else None
    wants_json = mime == JSON_MIME
    if tools is None and calling is None and not wants_json:
        if response_schema is not None or response_json_schema is not None:
            raise APIError(400, "A response schema needs responseMimeType 'application/json'.",
                           param="generationConfig.responseMimeType")
        return None
    output = None
    if wants_json:
        schema = response_json_schema if response_json_schema is not None else (
            json_schema(response_schema) if response_schema is not None else None)
        output = OutputFormat("json_schema", schema, "response", strict=True) if schema is not None \
            else OutputFormat("json_object")
    declarations = [d for tool in tools or () for d in tool.functionDeclarations]
    allowed = set(calling.allowedFunctionNames or ()) if calling is not None else set()
    specs = [ToolSpec(d.name, d.description or "", d.parametersJsonSchema if d.parametersJsonSchema is not None
                      else json_schema(d.parameters) if d.parameters is not None else None)
             for d in declarations if not allowed or d.name in allowed]
    result = Tooling(tools=specs, output=output, choice_param="toolConfig", format_param="responseMimeType")
    mode = calling.mode if calling is not None else None
    if mode == "ANY":
        named = calling.allowedFunctionNames if calling is not None else None
        if named and len(named) == 1:
            set_choice(result, None, function=named[0])
        else:
            set_choice(result, "required")
    elif mode == "NONE":
        set_choice(result, "none")
    return result


def turn_messages(turn: int, role: str, text: str, calls: list[FunctionCall],
                  responses: list[FunctionResponse], pending: list[ToolCall]) -> list[Message]:
    """One content's messages: a model turn's calls (ids made up), a user turn's function responses (matched
    to the first unanswered call of their name), then its text."""
    if calls:
        made = tuple(ToolCall(c.id or f"call_{turn}_{n}", c.name, json_text(c.args or {}))
                     for n, c in enumerate(calls))
        pending[:] = list(made)
        return [ToolTurn("assistant", text, made)]
    out: list[Message] = []
    for n, response in enumerate(responses):
        call = next((c for c in pending if response.id in (None, c.id) and c.name == response.name), None)
        if call is not None:
            pending.remove(call)
        call_id = response.id or (call.id if call else f"call_{turn}_{n}")
        out.append(ToolTurn("tool", json_text(response.response or {}), (), call_id))
    if text or not out:
        out.append(Message("assistant" if role == "model" else "user", text))
    return out


def call_parts(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [{"functionCall": {"name": c.name, "args": arguments_object(c.arguments)}} for c in calls]
