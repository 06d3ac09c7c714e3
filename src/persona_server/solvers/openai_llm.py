"""`ovos-solver-openai-plugin`: any OpenAI-compatible chat endpoint (OpenAI, Ollama, llama.cpp, vLLM, ...).

Config keys are those of the OpenVoiceOS plugin: `api_url` (base URL such as "https://api.openai.com/v1" or
"http://127.0.0.1:11434/v1"; a URL that already ends in "/chat/completions" is used as is), `key`, `model`,
`system_prompt` (the legacy `persona` and `initial_prompt` are used when it is absent), `max_tokens`,
`temperature`, `top_p`, plus `timeout` (seconds the upstream may stay silent before the chain moves on).

System prompts: the persona's `system_prompt` comes first, then the client's system (and developer)
messages in their order, then the grounding block of `context_solvers`, joined into ONE system message at the
start of the conversation. One, because many chat templates (Mistral, Gemma and others served by llama.cpp or
Ollama) reject or drop a second system message; the persona's prompt leads so it sets who is speaking, and the
client's instructions, read after it, can refine it. User and assistant turns follow unchanged.

A request's `max_tokens`, `temperature`, `top_p` and `stop` override the config's. Deltas are passed on exactly
as the upstream sends them: nothing is held back until a sentence ends, nothing is dropped at the end. Any
upstream trouble (an HTTP error status, a malformed stream, no connection, silence past `timeout`, an empty
answer) raises or yields nothing, so the chain moves on to the next solver; a stream that ends without `[DONE]`
or a finish_reason, or whose connection drops, is a failure, never a whole answer. The key travels only in the
Authorization header and never appears in an error or a log line; credentials in `api_url`
(`http://user:pass@host/v1`) are taken out of the URL, sent as Basic auth when no `key` is set, and masked too.

Grounding: `context_solvers: [names]` runs those solvers for the question, all at once, before the LLM is asked,
and puts their answers into the system message with an instruction to rely on them; their sources become the
answer's sources. Tools: `tool_solvers: [names]` (or `tools: true`, which offers the `context_solvers` as tools
instead of running them up front) gives an upstream that supports OpenAI tools one function per solver
(`search_wikipedia(query)`, ...); its tool calls are answered by those solvers, for at most `max_tool_rounds`
rounds, after which the model must answer without tools. An upstream that refuses tools (HTTP 400 to a request
carrying them) is asked again without them. `toolboxes` adds the tools of MCP servers (see `toolboxes.py`), each
call bounded by `tool_timeout` seconds; their names never clash with the solvers' (see `tool_table.py`).

Client tools and formats (persona_server.tooling): the client's `tools`, `tool_choice`, `parallel_tool_calls`
and `response_format`, and the tool calls and tool results in its history, go upstream as OpenAI spells them;
the upstream's calls of the client's tools come back as tool-call pieces, streamed fragment by fragment as they
arrive, and end the answer (the client runs them). Beside `tool_solvers` they are offered together; the persona's
are run here, and a client tool with the name of one of the persona's is not offered (the persona's wins).
When a round calls both, the client's calls are returned and the persona's of that round are dropped: their
results could not reach the model before the client's do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import orjson
from pydantic import BeforeValidator, Field

from persona_server import cleanup, secrets
from persona_server.query import Query, Source
from persona_server.solvers import grounding, tool_table
from persona_server.solvers import toolboxes as boxes
from persona_server.solvers.base import Piece, Solver, SolverContext, SolverOptions
from persona_server.solvers.openai_wire import (
    CallSlot,
    Turn,
    UpstreamError,
    delta,
    response_format_json,
    sse_events,
    status_message,
    tool_choice_json,
    tools_json,
    whole,
)
from persona_server.tooling import JSON, TOOLS, ToolCallPiece, ToolSpec

log = logging.getLogger(__name__)


class OpenAIOptions(SolverOptions):
    api_url: str = Field(default="https://api.openai.com/v1", description="base URL of the OpenAI-compatible API")
    key: str | None = Field(default=None, description="API key, sent as a Bearer token")
    model: str = "gpt-4o-mini"
    system_prompt: str | None = None
    persona: str | None = Field(default=None, description="legacy name of system_prompt")
    initial_prompt: str | None = Field(default=None, description="legacy name of system_prompt")
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    context_solvers: list[grounding.SolverRef] = Field(default_factory=list)
    tool_solvers: list[grounding.SolverRef] = Field(default_factory=list)
    tools: bool = Field(default=False, description="offer the context_solvers as tools instead of running them")
    max_tool_rounds: int = Field(default=3, ge=1, le=10)
    toolboxes: Annotated[list[boxes.ToolboxConfig], BeforeValidator(boxes.parse)] = Field(
        default_factory=list, description="MCP servers whose tools the model may call (mcpServers format)")
    tool_timeout: float = Field(default=15.0, gt=0, le=600, description="seconds one toolbox tool call may take")
    connect_timeout: float = Field(default=5.0, gt=0)


class OpenAISolver(Solver):
    name = "ovos-solver-openai-plugin"
    aliases = ("ovos-solver-openai-persona-plugin", "openai")
    description = "Answers with any OpenAI-compatible chat model, optionally grounded on other solvers."
    chat = True
    speculative = False  # every call costs money or GPU time
    supports = frozenset({TOOLS, JSON})  # what the upstream is asked for: it is trusted to honour them
    default_timeout = 30.0
    default_deadline = 120.0
    Options = OpenAIOptions
    options: OpenAIOptions

    def __init__(self, options: SolverOptions, context: SolverContext) -> None:
        super().__init__(options, context)
        if self.options.key:
            # Also when built outside a persona file (tests, mixtures built in code).
            secrets.register(self.options.key)
        self._context_helpers: list[grounding.Helper] = []
        self._tools: dict[str, tool_table.PersonaTool] = {}
        self._toolboxes: list[boxes.Toolbox] = []
        # Credentials in the URL (`http://user:pass@host/v1`) leave it: httpx would send them in place of the key.
        # They are Basic auth when no key is set, and masked like any secret.
        base, user, password = secrets.split_url_credentials(self.options.api_url.strip())
        self._basic: str | None = None
        if user is not None:
            secrets.register_url_credentials(self.options.api_url.strip())
            if not self.options.key:
                self._basic = secrets.basic_credentials(user, password)
        base = base.rstrip("/")
        self._url = base if base.endswith("/chat/completions") else f"{base}/chat/completions"

    @property
    def system_prompt(self) -> str | None:
        o = self.options
        return o.system_prompt if o.system_prompt is not None else (o.persona or o.initial_prompt)

    @property
    def upstream_timeout(self) -> float:
        """Longest silence tolerated from the upstream (connect excluded)."""
        return self.options.timeout if self.options.timeout is not None else self.default_timeout

    @property
    def timeout(self) -> float:
        # The chain waits this long for the first piece, which may come after the look-ups and tool rounds.
        budget = self.upstream_timeout + grounding.helpers_budget(self._context_helpers)
        if self._tools:
            tools_budget = tool_table.budget(self._tools.values())
            budget += self.options.max_tool_rounds * (self.upstream_timeout + tools_budget)
        return budget

    async def load(self) -> None:
        o = self.options
        offer_context_as_tools = o.tools and not o.tool_solvers
        context_refs = [] if offer_context_as_tools else o.context_solvers
        tool_refs = o.tool_solvers or (o.context_solvers if offer_context_as_tools else [])
        self._context_helpers, tool_helpers, self._toolboxes = await asyncio.gather(
            grounding.load_helpers(context_refs, self.context, owner=self.name),
            grounding.load_helpers(tool_refs, self.context, owner=self.name),
            boxes.open_all(o.toolboxes, persona=self.context.persona, owner=self.name),
        )
        self._tools = tool_table.build([tool_table.SolverTool(h) for h in tool_helpers],
                                       boxes.tools_of(self._toolboxes, o.tool_timeout))

    async def close(self) -> None:
        for box in self._toolboxes:
            await box.close()
        helpers = [t.helper for t in self._tools.values() if isinstance(t, tool_table.SolverTool)]
        for helper in [*self._context_helpers, *helpers]:
            await helper.solver.close()

    # -- answering ----------------------------------------------------------------------------------------

    async def stream(self, query: Query) -> AsyncIterator[Piece]:
        extra, sources = await grounding.ground(self._context_helpers, query)
        for source in sources:
            yield source
        messages = grounding.chat_messages(query, self.system_prompt, extra, tool_turns=True)
        tools = dict(self._tools)
        tooling = query.tooling
        # The persona's tool wins a name clash: the client's is not offered.
        client_tools = [t for t in tooling.tools if t.name not in tools] if tooling is not None else []
        rounds = 0
        while True:
            offer = bool(tools) and rounds < self.options.max_tool_rounds
            body = self._body(query, messages, tools if offer else None, client_tools)
            turn = Turn()
            relayed: dict[int, int] = {}  # upstream call index -> the client's
            try:
                async for piece in self._request(body, turn):
                    if type(piece) is str:
                        yield piece
                        continue
                    assert isinstance(piece, ToolCallPiece)
                    call = turn.tool_calls[piece.index]
                    if call.name in self._tools:
                        continue  # the persona's own: run below, once whole
                    index = relayed.setdefault(piece.index, len(relayed))
                    yield ToolCallPiece(index, piece.id, piece.name, piece.arguments)
            except UpstreamError as exc:
                if exc.status == 400 and not turn.text and not relayed and (offer or client_tools):
                    if offer:
                        tools = {}
                    elif tooling is not None and not tooling.requires_call:
                        client_tools = []
                    else:
                        raise
                    log.info("persona %r: the upstream refused tools (%s); asking without them",
                             self.context.persona, exc)
                    continue
                raise
            if relayed or not (offer and turn.tool_calls):
                return  # the client runs its tools; or the answer is complete
            rounds += 1
            calls = [turn.tool_calls[i] for i in sorted(turn.tool_calls)]
            messages.append({
                "role": "assistant",
                "content": "".join(turn.text) or None,
                "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in calls
                ],
            })
            results = await asyncio.gather(*(self._run_tool(call, tools, query) for call in calls))
            for call, (text, found) in zip(calls, results, strict=True):
                for source in found:
                    yield source
                messages.append({"role": "tool", "tool_call_id": call.id, "content": text})

    def _body(self, query: Query, messages: list[dict[str, Any]], tools: dict[str, tool_table.PersonaTool] | None,
              client_tools: list[ToolSpec]) -> dict[str, Any]:
        o = self.options
        body: dict[str, Any] = {"model": o.model, "messages": messages, "stream": True}
        # The request's own preferences win over the persona's defaults.
        for key, value in (
            ("max_tokens", query.max_tokens if query.max_tokens is not None else o.max_tokens),
            ("temperature", query.temperature if query.temperature is not None else o.temperature),
            ("top_p", query.top_p if query.top_p is not None else o.top_p),
            ("stop", query.stop or None),
        ):
            if value is not None:
                body[key] = value
        specs = [tool.spec() for tool in tools.values()] if tools else []
        specs += tools_json(client_tools)
        if specs:
            body["tools"] = specs
        tooling = query.tooling
        if tooling is not None:
            if client_tools:
                body["tool_choice"] = tool_choice_json(tooling)
                if tooling.parallel_tool_calls is not None:
                    body["parallel_tool_calls"] = tooling.parallel_tool_calls
            if tooling.output is not None:
                body["response_format"] = response_format_json(tooling.output)
        return body

    async def _run_tool(self, call: CallSlot, tools: dict[str, tool_table.PersonaTool],
                        query: Query) -> tuple[str, list[Source]]:
        tool = tools.get(call.name)
        if tool is None:
            return f"Error: there is no function named {call.name!r}.", []
        return await tool.call(call.arguments, query)

    # -- one upstream request -----------------------------------------------------------------------------

    async def _request(self, body: dict[str, Any], turn: Turn) -> AsyncIterator[str | ToolCallPiece]:
        """POST one chat request and yield the answer's text deltas and tool-call fragments as they arrive;
        `turn` gathers them whole."""
        headers = {"Accept": "text/event-stream"}
        if self.options.key:
            headers["Authorization"] = f"Bearer {self.options.key}"
        elif self._basic:
            headers["Authorization"] = f"Basic {self._basic}"
        timeout = httpx.Timeout(self.upstream_timeout, connect=min(self.options.connect_timeout,
                                                                   self.upstream_timeout))
        client = self.context.http
        request = client.build_request("POST", self._url, content=orjson.dumps(body), timeout=timeout,
                                       headers={**headers, "Content-Type": "application/json"})
        try:
            response = await cleanup.opened(client.send(request, stream=True), httpx.Response.aclose)
            try:
                if response.status_code >= 400:
                    await response.aread()
                    raise UpstreamError(status_message(response, self.options.key), status=response.status_code)
                if response.headers.get("content-type", "").startswith("application/json"):
                    # An upstream that ignores `stream` answers with one JSON object.
                    await response.aread()
                    for piece in whole(response.content, turn):
                        if type(piece) is str:
                            turn.text.append(piece)
                        yield piece
                    return
                async for data in sse_events(response):
                    if data == "[DONE]":
                        return
                    for piece in delta(data, turn, self.options.key):
                        if type(piece) is str:
                            turn.text.append(piece)
                        yield piece
                # A stream that ends with neither `[DONE]` nor a finish_reason was cut off: not a whole answer.
                if not turn.finished:
                    raise UpstreamError("the upstream's answer ended before it was finished")
            finally:
                # Shielded: a client that left cancels this task, and an unfinished close would keep the
                # connection checked out of the shared pool for good.
                await cleanup.shielded(response.aclose())
        except httpx.TimeoutException:
            raise UpstreamError(f"the upstream sent nothing for {self.upstream_timeout:g} s") from None
        except httpx.HTTPError as exc:
            if turn.text:
                raise UpstreamError(f"the upstream connection broke mid-answer: {type(exc).__name__}") from None
            raise UpstreamError(f"cannot reach the upstream: {type(exc).__name__}") from None
