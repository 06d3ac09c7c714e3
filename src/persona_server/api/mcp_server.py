"""Personas as tools for other agents, over MCP: `--mcp` mounts it at `/mcp` (streamable HTTP), and
`persona-server mcp` speaks it over stdio (for desktop agents that launch a command).

The tools, listed afresh from the catalog (so a reloaded persona directory shows at once):
- `ask_<persona>` for each persona: `question` (required) and `user` (optional: who is asking, which keys the
  persona's memory as the `user` field does on the other APIs). The answer is the text, and as structured content
  `{answer, solver, sources}`. It runs through the persona's chain, with its limits and deadlines.
- one per look-up or utility solver the personas use (`search_wikipedia`, `define_word`, `calculate`, ...), named
  and described as the LLM solvers offer them to their models (`grounding.tool_name` / `tool_spec`): `query`.
  Run as a chain of that one solver, configured by the first persona that uses it.

The HTTP endpoint is stateless (no session kept between requests): any of `--workers N` can answer any request,
and shutting down leaves no session behind. The API key, the browser checks, the body-size limit and the request
budget apply to `/mcp` as to every route.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from persona_server import __version__, secrets
from persona_server.catalog import Catalog
from persona_server.chain import AnswerFailed, NoAnswer, run_chain
from persona_server.persona import Persona
from persona_server.query import Query
from persona_server.settings import Settings
from persona_server.slot import SolverSlot
from persona_server.solvers import grounding

log = logging.getLogger(__name__)

PATH = "/mcp"
EXTRA_HINT = "pip install 'persona-server[mcp]'"
ASK_PREFIX = "ask_"
MAX_QUESTION = 32_000  # characters
MAX_USER = 256  # as the `user` field elsewhere
# Tool calls answered at once (per process); more get an error result saying the server is busy.
MAX_CALLS = 64
# MCP tool names: letters, digits, `_`, `-` and `.`, at most 128.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "solver": {"type": ["string", "null"], "description": "the solver of the persona's chain that answered"},
        "sources": {"type": "array", "items": {"type": "object", "properties": {
            "title": {"type": "string"}, "url": {"type": "string"}}, "required": ["title", "url"]}},
    },
    "required": ["answer", "solver", "sources"],
}


def missing_sdk() -> str | None:
    """What to install when the MCP SDK is missing (None when it is there)."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        return f"MCP needs the mcp package: {EXTRA_HINT}"
    return None


def require_mcp() -> None:
    problem = missing_sdk()
    if problem:
        raise RuntimeError(problem)


def ask_tool_name(persona: str) -> str:
    return (ASK_PREFIX + (_UNSAFE.sub("_", persona.strip().lower()).strip("_") or "persona"))[:128]


@dataclass(slots=True)
class Entry:
    """One MCP tool: what `tools/list` shows, and what runs it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    run: Callable[[dict[str, Any]], Awaitable[tuple[str, dict[str, Any] | None, bool]]]


class PersonaTools:
    """The tools of a catalog's personas, and their calls."""

    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self.catalog = catalog
        self.settings = settings
        self._calls = 0
        self._key: tuple[int, ...] = ()
        self._table: dict[str, Entry] = {}

    def table(self) -> dict[str, Entry]:
        personas = list(self.catalog)
        key = tuple(id(p) for p in personas) + tuple(s.state == "error" for p in personas for s in p.slots)
        if key != self._key:  # personas reloaded (or a solver failed): list again
            self._table, self._key = self._build(personas), key
        return self._table

    def _build(self, personas: list[Persona]) -> dict[str, Entry]:
        table: dict[str, Entry] = {}
        for persona in personas:
            name = ask_tool_name(persona.name)
            candidate, n = name, 2
            while candidate in table:
                candidate, n = f"{name[:120]}_{n}", n + 1
            table[candidate] = self._ask_entry(candidate, persona)
        for persona in personas:
            for slot in persona.slots:
                if _is_lookup(slot):
                    name = grounding.tool_name(slot.name)
                    if name not in table:  # the first persona's config of a solver serves it
                        table[name] = self._lookup_entry(name, persona, slot)
        return table

    def _ask_entry(self, name: str, persona: Persona) -> Entry:
        default = " It is the server's default persona." if persona is self.catalog.default else ""
        about = f" {persona.spec.description.strip()}" if persona.spec.description.strip() else ""
        schema = {
            "type": "object",
            "properties": {
                "question": {"type": "string", "description": "the question or message for the persona",
                             "maxLength": MAX_QUESTION},
                "user": {"type": "string", "maxLength": MAX_USER, "description": "who is asking (optional): "
                         "the persona remembers conversations per user, as with the `user` field of the chat APIs"},
            },
            "required": ["question"],
        }

        async def run(arguments: dict[str, Any]) -> tuple[str, dict[str, Any] | None, bool]:
            question, user = _text_argument(arguments, "question", MAX_QUESTION), arguments.get("user")
            if user is not None and (not isinstance(user, str) or len(user) > MAX_USER):
                raise ValueError(f"'user' must be a string of at most {MAX_USER} characters")
            query = self._query(question, user=user or None)
            return await self._answer(persona.stream(query))

        return Entry(name, f"Ask the persona {persona.name} (a chain of solvers: "
                     f"{', '.join(persona.spec.solvers)}) and get its answer, with the solver that answered and "
                     f"its sources.{about}{default}", schema, ANSWER_SCHEMA, run)

    def _lookup_entry(self, name: str, persona: Persona, slot: SolverSlot) -> Entry:
        assert slot.solver is not None
        function = grounding.tool_spec(name, grounding.Helper(slot.name, slot.solver))["function"]

        async def run(arguments: dict[str, Any]) -> tuple[str, dict[str, Any] | None, bool]:
            text = _text_argument(arguments, "query", MAX_QUESTION)
            query = self._query(grounding.term_question(slot.name, text))
            query.persona = persona.name
            stream = run_chain([slot], query, speculative=False, persona=persona.name, on_no_answer="error")
            return await self._answer(stream, no_answer="No answer found.")

        return Entry(name, function["description"], function["parameters"], ANSWER_SCHEMA, run)

    def _query(self, text: str, user: str | None = None) -> Query:
        return Query.from_text(text, lang=self.settings.lang, units=self.settings.units, user=user)

    async def _answer(self, stream: Any, no_answer: str | None = None) -> tuple[str, dict[str, Any] | None, bool]:
        try:
            text = await stream.text()
        except NoAnswer as exc:
            if no_answer is None:
                return str(exc), None, True
            text = no_answer
        except AnswerFailed as exc:
            return f"The answer broke off: {secrets.redact(str(exc))}", None, True
        sources = [s.to_dict() for s in stream.sources]
        return text, {"answer": text, "solver": stream.solver, "sources": sources}, False

    async def call(self, name: str, arguments: dict[str, Any] | None) -> tuple[str, dict[str, Any] | None, bool]:
        """Run a tool: (text, structured content, is_error). Raises LookupError for an unknown tool."""
        entry = self.table().get(name)
        if entry is None:
            raise LookupError(f"unknown tool {name!r}")
        if self._calls >= MAX_CALLS:
            return f"The server is busy: {MAX_CALLS} tool calls are in progress. Try again shortly.", None, True
        self._calls += 1
        try:
            budget = self.settings.request_timeout or None
            async with asyncio.timeout(budget):
                return await entry.run(arguments or {})
        except ValueError as exc:
            return f"Invalid arguments: {exc}", None, True
        except TimeoutError:
            return f"No answer within {budget:g} s.", None, True
        finally:
            self._calls -= 1


def _is_lookup(slot: SolverSlot) -> bool:
    """Look-ups and utilities: cheap, idempotent question solvers (the ones the chain may run early)."""
    solver = slot.solver
    return solver is not None and slot.state != "error" and type(solver).speculative and not solver.chat


def _text_argument(arguments: dict[str, Any], name: str, limit: int) -> str:
    value = arguments.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{name}' must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"'{name}' is longer than {limit} characters")
    return value


def build_server(tools: PersonaTools) -> Any:
    """The SDK's low-level MCP server over the persona tools."""
    import mcp_types as types
    from mcp.server import Server
    from mcp.shared.exceptions import MCPError

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[
            types.Tool(name=e.name, description=e.description, input_schema=e.input_schema,
                       output_schema=e.output_schema)
            for e in tools.table().values()
        ])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            text, structured, failed = await tools.call(params.name, params.arguments)
        except LookupError as exc:
            raise MCPError(code=types.INVALID_PARAMS, message=str(exc)) from None
        return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured,
                                    is_error=failed)

    return Server("persona-server", version=__version__,
                  instructions="Each ask_<persona> tool asks one persona; the other tools are its look-ups.",
                  on_list_tools=list_tools, on_call_tool=call_tool)


class McpEndpoint:
    """`/mcp`: the MCP server over streamable HTTP, as an ASGI app, and the lifespan it needs."""

    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        require_mcp()
        from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager

        # Origin, Host and the key are checked in front of it (api/front_door.py), as for every route.
        self.manager = StreamableHTTPSessionManager(
            app=build_server(PersonaTools(catalog, settings)), stateless=True, json_response=True,
            max_request_body_size=settings.max_body_size)
        self.app = StreamableHTTPASGIApp(self.manager)

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield


def stdio_command(args: argparse.Namespace) -> int:
    """`persona-server mcp`: the personas as MCP tools over stdin/stdout; logs go to stderr only."""
    from persona_server.cli import build_catalog
    from persona_server.logs import setup_logging

    setup_logging(args.log_level)
    if missing_sdk():
        print(f"persona-server: {missing_sdk()}", file=sys.stderr)
        return 2
    settings = Settings(persona_files=list(args.persona), persona_dirs=list(args.personas),
                        default_persona=args.default_persona, lang=args.lang, units=args.units,
                        request_timeout=max(0.0, args.request_timeout))
    asyncio.run(serve_stdio(build_catalog(settings), settings))
    return 0


async def serve_stdio(catalog: Catalog, settings: Settings) -> None:
    """Speak MCP over this process's stdin and stdout until stdin closes (the SDK points fd 1 at stderr
    meanwhile, so nothing but protocol reaches stdout)."""
    require_mcp()
    from mcp.server.stdio import stdio_server

    server = build_server(PersonaTools(catalog, settings))
    await catalog.start()
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await catalog.close()
