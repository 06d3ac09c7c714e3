"""Client tools and structured outputs, in protocol-neutral form.

A request that offers tools (OpenAI `tools`, Anthropic `tools`, Ollama `tools`, ...) or asks for a JSON answer
(`response_format`, `text.format`, `format`, ...) carries one `Tooling` on its `Query`; plain requests carry
None, so the common path pays nothing. On the answer side a solver may yield `ToolCallPiece`s: a tool call, or
a fragment of one as an LLM streams it (the first fragment of a call has its id and name, later ones append
to its arguments). The chain's rules for them (which solvers may answer, what a JSON answer must be) are in
`chain.py`, using `Tooling.needs` and `check_answer` below.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

# What a solver may declare it supports (`Solver.supports`): calling the client's tools, answering in JSON.
TOOLS = "tools"
JSON = "json"

FormatKind = Literal["text", "json_object", "json_schema"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the client offers: its name, what it does, and its parameters as a JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call of a tool by the assistant: `arguments` is the JSON text of the arguments object."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """The answer format a client asked for; `schema`, `name` and `strict` belong to `json_schema`."""

    kind: FormatKind = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool = False
    description: str | None = None

    @property
    def is_json(self) -> bool:
        return self.kind != "text"


@dataclass(slots=True)
class Tooling:
    """What a request says about tools and the answer's format.

    `choice` is "auto", "none", "required" or "function" (then `function` names it). The `*_param` fields are
    the request fields as the client wrote them (`tool_choice`, `text.format`, `format`), for error messages.
    """

    tools: list[ToolSpec] = field(default_factory=list)
    choice: Literal["auto", "none", "required", "function"] = "auto"
    function: str | None = None
    parallel_tool_calls: bool | None = None
    output: OutputFormat | None = None
    choice_param: str = "tool_choice"
    format_param: str = "response_format"

    @property
    def needs(self) -> frozenset[str]:
        """The capabilities a solver must have to answer this request at all."""
        needs: set[str] = set()
        if self.tools and self.choice in ("required", "function"):
            needs.add(TOOLS)
        if self.output is not None and self.output.is_json:
            needs.add(JSON)
        return frozenset(needs)

    @property
    def requires_call(self) -> bool:
        return bool(self.tools) and self.choice in ("required", "function")

    def settle(self) -> Tooling | None:
        """The tooling a solver sees: `none` takes the tools away; nothing left means a plain request (None).

        A named function that is not among the tools is the client's mistake: `ValueError` naming it.
        """
        if self.choice == "function" and self.function not in {tool.name for tool in self.tools}:
            raise ValueError(f"the function '{self.function}' named in '{self.choice_param}' is not in 'tools'")
        if self.choice == "none":
            self.tools = []
            self.choice = "auto"
        if not self.tools and (self.output is None or not self.output.is_json):
            return None
        return self


@dataclass(frozen=True, slots=True)
class ToolCallPiece:
    """A tool call in an answer's stream, or a fragment of one.

    `index` orders the calls of one answer; the first piece of a call carries its `id` and `name`, and
    `arguments` fragments concatenate to its arguments' JSON text (a whole call is one piece).
    """

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


def merge_calls(pieces: list[ToolCallPiece]) -> list[ToolCall]:
    """Whole tool calls from their streamed fragments, in index order."""
    calls: dict[int, list[str]] = {}
    for piece in pieces:
        entry = calls.setdefault(piece.index, ["", "", ""])
        entry[0] = entry[0] or piece.id
        entry[1] = entry[1] or piece.name
        entry[2] += piece.arguments
    return [ToolCall(id or f"call_{index}", name, arguments or "{}")
            for index, (id, name, arguments) in sorted(calls.items())]


def check_answer(tooling: Tooling, text: str, calls: bool) -> str | None:
    """Why a solver's whole answer does not give what the request requires, or None when it does.

    A required tool call must be there; a JSON answer must parse, and for a strict `json_schema`, validate
    against the schema. An answer made of tool calls is not held to the JSON format (the calls are the answer).
    """
    if tooling.requires_call and not calls:
        return "it answered without the required tool call"
    output = tooling.output
    if calls or output is None or not output.is_json:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return f"its answer is not JSON ({exc})"
    if output.kind == "json_object" and not isinstance(value, dict):
        return "its answer is JSON but not an object"
    if output.kind == "json_schema" and output.strict and output.schema is not None:
        return schema_problem(output.schema, value)
    return None


def invalid_schema(schema: dict[str, Any]) -> str | None:
    """Why `schema` is not a usable JSON schema (checked against its metaschema), or None."""
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        return exc.message
    except Exception as exc:
        return type(exc).__name__
    return None


def schema_problem(schema: dict[str, Any], value: Any) -> str | None:
    """How `value` fails `schema` (the first problem jsonschema finds), or None when it validates."""
    import jsonschema  # only requests with a strict schema need it

    try:
        validator_class = jsonschema.validators.validator_for(schema)
        error = jsonschema.exceptions.best_match(validator_class(schema).iter_errors(value))
    except jsonschema.exceptions.SchemaError as exc:
        return f"the schema itself is invalid ({exc.message})"
    except Exception as exc:  # an unresolvable $ref, a schema too deep to walk: it cannot be checked
        return f"the schema cannot be checked ({type(exc).__name__})"
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"its answer does not match the schema{f' at {where}' if where else ''}: {error.message}"


def json_text(value: Any) -> str:
    """`value` (parsed from a client's JSON) as JSON text. orjson refuses integers beyond 64 bits, which JSON
    allows and a client's tool arguments may hold: the standard library writes those."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False)
