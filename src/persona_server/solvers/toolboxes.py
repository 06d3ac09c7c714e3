"""Toolboxes: MCP servers whose tools an LLM solver's model may call (the block's `toolboxes`).

Written as MCP clients write their `mcpServers`:

    "toolboxes": {
        "orders": {"command": "python", "args": ["orders_server.py"], "env": {"ORDERS_TOKEN": "..."}},
        "search": {"url": "http://127.0.0.1:9000/mcp", "headers": {"Authorization": "Bearer ..."}}
    }

(or a list of such objects, each with a `name`). A `command` is run over stdio, a `url` spoken to with
streamable HTTP, both through the official `mcp` SDK (the `mcp` extra). Each toolbox is opened when its solver
loads and closed when it closes: one session, and for stdio one process, per solver, owned by a task of its own
(the SDK's transports are task-scoped, while a solver loads in one task and closes in another). Its tools are
listed once, when it opens. One that cannot start (no such command, the server unreachable or failing, the extra
not installed) is logged and left out: the persona answers without it. `env` and `headers` values are secrets:
registered, so no log line shows them.

A call has `tool_timeout` seconds; an error, an error result or a timeout is the call's result text ("Error:
..."), for the model to read and answer anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from persona_server import secrets
from persona_server.query import Query, Source
from persona_server.solvers.tool_table import bound_result, function_name

if TYPE_CHECKING:
    from mcp import Client

log = logging.getLogger(__name__)

EXTRA_HINT = "pip install 'persona-server[mcp]'"
# Bounds on what one toolbox may bring: tools offered, listing pages read, and the wait for it to start.
MAX_TOOLS = 64
MAX_PAGES = 10
START_TIMEOUT = 20.0
# Seconds a closing toolbox has to end its session (the SDK gives a stdio server 2 s, then terminates it, 2 s,
# then kills it).
CLOSE_TIMEOUT = 10.0


class ToolboxConfig(BaseModel):
    """One MCP server, as an `mcpServers` entry."""

    model_config = ConfigDict(extra="ignore")

    name: str = ""
    type: Literal["stdio", "http", "streamable-http", "streamable_http"] | None = None
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    disabled: bool = False  # Claude Desktop's and Cursor's spelling

    @model_validator(mode="after")
    def _one_transport(self) -> ToolboxConfig:
        if bool(self.command) == bool(self.url):
            raise ValueError("a toolbox needs either 'command' (run over stdio) or 'url' (streamable HTTP)")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError("a toolbox 'url' must start with http:// or https://")
        for value in [*self.env.values(), *self.headers.values()]:
            secrets.register(value)
        if self.url:
            secrets.register_url_credentials(self.url)
        return self

    @property
    def active(self) -> bool:
        return self.enabled and not self.disabled

    def describe(self) -> str:
        """What it runs, for logs and `validate` (no argument, env value or URL credential shown)."""
        if self.command:
            return f"stdio: {os.path.basename(self.command)}"
        return f"http: {secrets.split_url_credentials(self.url or '')[0]}"


def parse(value: Any) -> list[ToolboxConfig]:
    """`{"name": {...}}` or `[{"name": ..., ...}]` as a list of configs with unique names."""
    if not value:
        return []
    if isinstance(value, dict):
        items = [{**entry, "name": name} if isinstance(entry, dict) else entry for name, entry in value.items()]
    elif isinstance(value, list):
        items = value
    else:
        raise ValueError("'toolboxes' must be an object of MCP servers by name, or a list of them")
    configs = [ToolboxConfig.model_validate(item) for item in items]
    names = [c.name for c in configs]
    if any(not n.strip() for n in names) or len(set(names)) != len(names):
        raise ValueError("every toolbox needs a name of its own")
    return configs


class Toolbox:
    """One open MCP session and the tools it offers."""

    def __init__(self, config: ToolboxConfig, *, persona: str) -> None:
        self.config = config
        self.name = config.name
        self.persona = persona
        self.tools: list[Any] = []  # mcp_types.Tool, as listed when it opened
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def open(self) -> None:
        """Start the session and list the tools; raises (with a message fit for a log line) when it cannot."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(ready), name=f"toolbox {self.name}")
        try:
            # From outside the task: a timeout inside would have to exit its scope across the SDK's own scopes.
            async with asyncio.timeout(START_TIMEOUT):
                await asyncio.shield(ready)
        except TimeoutError:
            await self._cancel()
            raise RuntimeError(f"did not start within {START_TIMEOUT:g} s") from None
        except BaseException:
            await self.close()
            raise

    async def _run(self, ready: asyncio.Future[None]) -> None:
        try:
            from mcp import Client
        except ImportError:
            ready.set_exception(RuntimeError(f"the mcp package is not installed ({EXTRA_HINT})"))
            return
        try:
            async with contextlib.AsyncExitStack() as stack:
                client = await stack.enter_async_context(Client(await self._transport(stack)))
                self.tools = await _list_tools(client)
                self._client = client
                ready.set_result(None)
                await self._stop.wait()
        except Exception as exc:
            reason = _why(exc)
            if not ready.done():
                ready.set_exception(RuntimeError(reason))
            else:
                log.warning("persona %r: toolbox %r stopped: %s", self.persona, self.name, secrets.redact(reason))
        finally:
            self._client = None

    async def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        config = self.config
        if config.command:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            return stdio_client(StdioServerParameters(command=config.command, args=config.args,
                                                      env=config.env or None, cwd=config.cwd))
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        # The SDK's own defaults (30 s, reads 300 s: a server may hold a response stream open); ours, when they
        # matter, are the per-call timeouts.
        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers=config.headers or None, timeout=httpx2.Timeout(30.0, read=300.0)))
        return streamable_http_client(config.url or "", http_client=http)

    async def call(self, tool: str, arguments: dict[str, Any], seconds: float) -> tuple[str, bool]:
        """One tool call: (its text, whether it is an error). Never raises but for cancellation."""
        client = self._client
        if client is None:
            return f"the toolbox {self.name!r} is not running", True
        try:
            async with asyncio.timeout(seconds + 1):  # the SDK's own timeout should come first
                result = await client.call_tool(tool, arguments, read_timeout_seconds=seconds)
        except TimeoutError:
            return f"the tool {tool!r} did not answer within {seconds:g} s", True
        except Exception as exc:
            from mcp_types import REQUEST_TIMEOUT

            if getattr(exc, "code", None) == REQUEST_TIMEOUT:
                return f"the tool {tool!r} did not answer within {seconds:g} s", True
            return f"the tool {tool!r} failed: {_why(exc)}", True
        return _result_text(result), bool(result.is_error)

    async def close(self) -> None:
        self._stop.set()
        task = self._task
        if task is None or task.done():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT)
        await self._cancel()

    async def _cancel(self) -> None:
        """End the session task however far it got (the SDK still stops a stdio server: its shutdown is
        shielded)."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


async def _list_tools(client: Client) -> list[Any]:
    tools: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None or len(tools) >= MAX_TOOLS:
            break
    if len(tools) > MAX_TOOLS:
        log.warning("an MCP server offers %d tools; the first %d are used", len(tools), MAX_TOOLS)
    return tools[:MAX_TOOLS]


def _result_text(result: Any) -> str:
    parts: list[str] = []
    for block in result.content or []:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            parts.append(text)
        else:
            parts.append(f"[{getattr(block, 'type', 'content')} content]")
    if not parts and result.structured_content is not None:
        parts.append(orjson.dumps(result.structured_content).decode())
    return "\n".join(parts)


def _why(exc: BaseException) -> str:
    """A readable reason from an exception, reaching into the exception groups of anyio task groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class McpTool:
    """One tool of a toolbox, as a persona tool (see tool_table.PersonaTool)."""

    def __init__(self, toolbox: Toolbox, tool: Any, timeout: float) -> None:
        self.toolbox = toolbox
        self.tool_name = tool.name  # the MCP name, which the call uses
        self.name = function_name(tool.name)
        self.description = (tool.description or f"The {tool.name} tool of the {toolbox.name} toolbox.")[:1024]
        schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
        self.parameters = schema if schema.get("type") == "object" else {"type": "object", "properties": {}}
        self.timeout = timeout

    @property
    def budget(self) -> float:
        return self.timeout + 1

    def spec(self) -> dict[str, Any]:
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}

    async def call(self, arguments: str, query: Query) -> tuple[str, list[Source]]:
        try:
            parsed = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            return "Error: the arguments are not valid JSON.", []
        if not isinstance(parsed, dict):
            return "Error: the arguments must be a JSON object.", []
        text, failed = await self.toolbox.call(self.tool_name, parsed, self.timeout)
        if failed:
            log.info("persona %r: toolbox %r: %s", self.toolbox.persona, self.toolbox.name, secrets.redact(text))
            return bound_result(f"Error: {text}" if not text.startswith("Error") else text), []
        return bound_result(text or "(no output)"), []


async def open_all(configs: list[ToolboxConfig], *, persona: str, owner: str) -> list[Toolbox]:
    """Open every active toolbox at once; those that fail are logged and left out."""
    boxes = [Toolbox(config, persona=persona) for config in configs if config.active]
    outcomes = await asyncio.gather(*(box.open() for box in boxes), return_exceptions=True)
    opened: list[Toolbox] = []
    for box, outcome in zip(boxes, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            log.warning("persona %r: %s toolbox %r (%s) cannot start, left out: %s", persona, owner, box.name,
                        box.config.describe(), secrets.redact(str(outcome)))
        else:
            log.info("persona %r: toolbox %r (%s) offers %d tools", persona, box.name, box.config.describe(),
                     len(box.tools))
            opened.append(box)
    return opened


def tools_of(boxes: list[Toolbox], timeout: float) -> list[tuple[str, McpTool]]:
    """(toolbox name, tool) for every tool of the open toolboxes, for tool_table.build."""
    return [(box.name, McpTool(box, tool, timeout)) for box in boxes for tool in box.tools]
