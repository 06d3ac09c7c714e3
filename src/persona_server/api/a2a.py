"""Personas as Agent-to-Agent (A2A) agents: `--a2a` serves each persona at `/a2a/<persona>/` (the default one also
at `/a2a/`), with its agent card at the A2A SDK's well-known path under it.

The `a2a-sdk` package does the protocol: JSON-RPC (methods of A2A 1.0, `SendMessage`, and of 0.3, `message/send`,
`message/stream`, on the same endpoint), Server-Sent Events, task bookkeeping. What is ours: the card (built from
the persona, for the host the client asked), the executor that answers with the persona's chain (api/a2a_agent.py),
a task store that forgets (`RecentTasks`), and tying the chain's work to the HTTP request that asked for it, so a
client that leaves (a stream or a blocking send) stops the work, as on every other route.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

# The SDK wraps most of its functions in OpenTelemetry spans, about 120 a message, even when nothing collects them:
# a fifth of a message's server CPU here (2.2 ms -> 1.75 ms). Off unless the operator asks for them.
os.environ.setdefault("OTEL_INSTRUMENTATION_A2A_SDK_ENABLED", "false")

try:
    from a2a.auth.user import UnauthenticatedUser
    from a2a.extensions.common import HTTP_EXTENSION_HEADER, get_requested_extensions
    from a2a.server.context import ServerCallContext
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.request_handlers.response_helpers import agent_card_to_dict
    from a2a.server.routes import ServerCallContextBuilder
    from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
    from a2a.server.tasks import TaskStore
    from a2a.types.a2a_pb2 import (
        AgentCapabilities,
        AgentCard,
        AgentInterface,
        AgentSkill,
        HTTPAuthSecurityScheme,
        ListTasksRequest,
        ListTasksResponse,
        SecurityRequirement,
        SecurityScheme,
        SendMessageRequest,
        StringList,
        Task,
        TaskState,
    )
    from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, VERSION_HEADER, TransportProtocol
    from a2a.utils.errors import UnsupportedOperationError
except ImportError as exc:  # the optional extra is missing: say how to get it
    raise ImportError("--a2a needs the A2A SDK: pip install 'persona-server[a2a]'") from exc

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from persona_server import __version__
from persona_server.api import errors
from persona_server.api.a2a_agent import EXCHANGE, Exchange, PersonaAgent
from persona_server.api.context import json_response, read_body, server_state
from persona_server.api.streaming import unless_disconnected
from persona_server.catalog import model_key
from persona_server.persona import Persona

PREFIX = "/a2a"
# Cards A2A clients look for: the SDK's path, and the one clients before A2A 0.3 read.
CARD_PATHS = (AGENT_CARD_WELL_KNOWN_PATH, "/.well-known/agent.json")
TEXT_MODES = ["text/plain"]
BEARER = "bearer"
_TERMINAL = frozenset({TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_CANCELED, TaskState.TASK_STATE_FAILED,
                       TaskState.TASK_STATE_REJECTED})


def is_card_path(path: str) -> bool:
    """An agent card's path: clients read it before they authenticate, so the API key does not guard it."""
    return path.startswith(PREFIX + "/") and path.endswith(CARD_PATHS)


# -- errors ---------------------------------------------------------------------------------------------------


def _jsonrpc_error(error: errors.APIError) -> Response:
    """Errors before the SDK sees a request (unknown persona, missing key, body too large), as A2A clients read
    them: a JSON-RPC error object, with the HTTP status telling what kind."""
    code = -32603 if error.status >= 500 else -32600
    body = {"jsonrpc": "2.0", "id": None,
            "error": {"code": code, "message": error.message, "data": {"status": error.status, "code": error.code}}}
    return errors.json_error(body, error)


errors.register_error_format(_jsonrpc_error, paths=(PREFIX,), prefixes=(PREFIX + "/",))


# -- tasks ----------------------------------------------------------------------------------------------------


class RecentTasks(TaskStore):
    """The tasks being answered, and only the last few answered ones (so a `tasks/get` or `tasks/cancel` right
    after the answer still finds its task): at most `keep` of them and `keep_bytes` in all, the oldest forgotten
    first. Tasks are never listed (`tasks/list` would show one client another's questions)."""

    def __init__(self, keep: int = 64, keep_bytes: int = 4 << 20, max_running: int = 4096) -> None:
        self.keep = keep
        self.keep_bytes = keep_bytes
        # Running tasks are bounded by the requests in flight (each is tied to one); this is a backstop.
        self.max_running = max_running
        self._running: dict[str, Task] = {}
        self._done: OrderedDict[str, tuple[Task, int]] = OrderedDict()
        self._done_bytes = 0

    def __len__(self) -> int:
        return len(self._running) + len(self._done)

    async def save(self, task: Task, context: ServerCallContext) -> None:
        copy = Task()
        copy.CopyFrom(task)  # the SDK goes on changing the object it saved
        self._forget_done(task.id)
        if task.status.state not in _TERMINAL:
            self._running[task.id] = copy
            while len(self._running) > self.max_running:
                del self._running[next(iter(self._running))]
            return
        self._running.pop(task.id, None)
        size = copy.ByteSize()
        self._done[task.id] = (copy, size)
        self._done_bytes += size
        while self._done and (len(self._done) > self.keep or self._done_bytes > self.keep_bytes):
            self._done_bytes -= self._done.popitem(last=False)[1][1]

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        task = self._running.get(task_id)
        if task is None and task_id in self._done:
            task = self._done[task_id][0]
        if task is None:
            return None
        copy = Task()
        copy.CopyFrom(task)
        return copy

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        raise UnsupportedOperationError(message=_NO_LISTING)

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        self._running.pop(task_id, None)
        self._forget_done(task_id)

    def _forget_done(self, task_id: str) -> None:
        old = self._done.pop(task_id, None)
        if old is not None:
            self._done_bytes -= old[1]


_NO_LISTING = "tasks/list is not offered: tasks are kept only while they are answered, and never shown to others."


class _Handler(DefaultRequestHandler):
    async def on_list_tasks(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        raise UnsupportedOperationError(message=_NO_LISTING)

    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Any:
        # No answer runs on in the background after its request returned (nothing would bound it, and its task
        # would be forgotten soon after): a client asking for that gets the finished task, as a blocking send.
        params.configuration.return_immediately = False
        return await super().on_message_send(params, context)


class _CallContexts(ServerCallContextBuilder):
    """The SDK's call context, minus the request's headers (the default copies them all, the API key too, into
    state that its debug logs print): only the protocol version, and the HTTP exchange the work belongs to."""

    def build(self, request: Request) -> ServerCallContext:
        headers = {VERSION_HEADER: version} if (version := request.headers.get(VERSION_HEADER)) else {}
        return ServerCallContext(
            user=UnauthenticatedUser(),
            state={"headers": headers, EXCHANGE: request.scope.get(EXCHANGE)},
            requested_extensions=get_requested_extensions(request.headers.getlist(HTTP_EXTENSION_HEADER)),
        )


# -- cards ----------------------------------------------------------------------------------------------------


def agent_card(persona: Persona, url: str, *, api_key: bool) -> AgentCard:
    """The persona's agent card, for its endpoint at `url`."""
    spec = persona.spec
    description = spec.description or (
        f"The {persona.name} persona of persona-server: asks its solvers in turn ({', '.join(spec.solvers)}) "
        "until one answers.")
    card = AgentCard(
        name=persona.name,
        description=description,
        version=__version__,
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding=TransportProtocol.JSONRPC.value, protocol_version=version)
            for version in ("1.0", "0.3")
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=TEXT_MODES,
        default_output_modes=TEXT_MODES,
        skills=_skills(persona),
    )
    if api_key:
        card.security_schemes[BEARER].CopyFrom(SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(
            scheme="Bearer", description="the server's API key (--api-key), as Authorization: Bearer KEY")))
        card.security_requirements.append(SecurityRequirement(schemes={BEARER: StringList()}))
    return card


def _skills(persona: Persona) -> list[AgentSkill]:
    """One skill per solver of the chain that can answer (not failed, not disabled), described by its class."""
    skills = []
    for slot in persona.slots:
        solver = slot.solver
        if solver is None or slot.state in ("error", "disabled"):
            continue
        doc = (type(solver).__doc__ or "").strip().split("\n\n")[0]
        description = solver.description or " ".join(doc.split()) or f"Answers with the {slot.name} solver."
        tags = [tag for tag, on in (("chat", solver.chat), ("look-up", solver.speculative),
                                    ("fallback", solver.always_answers)) if on]
        skills.append(AgentSkill(id=slot.name, name=type(solver).name or slot.name, description=description,
                                 tags=tags or ["answers"], input_modes=TEXT_MODES, output_modes=TEXT_MODES))
    return skills


def endpoint_path(persona: Persona | None) -> str:
    """Where a persona's A2A endpoint is: `/a2a/<name>/`, or `/a2a/` for the default persona's own."""
    return f"{PREFIX}/" if persona is None else f"{PREFIX}/{quote(persona.name, safe='')}/"


# -- the routes -----------------------------------------------------------------------------------------------


class A2A:
    """The `/a2a` routes. One SDK request handler per persona, made on first use and remade when the persona is
    (a reloaded file): each keeps its own tasks."""

    def __init__(self, public_url: str | None = None) -> None:
        self.public_url = public_url.rstrip("/") if public_url else None
        self._dispatchers: dict[str, tuple[Persona, JsonRpcDispatcher]] = {}

    def routes(self) -> list[Route]:
        named, default = _Endpoint(self, named=True), _Endpoint(self, named=False)
        return [
            Route(PREFIX, default, methods=["POST"]),
            *(Route(PREFIX + path, self.default_card, methods=["GET"]) for path in CARD_PATHS),
            Route(PREFIX + "/{persona}", named, methods=["POST"]),
            *(Route(PREFIX + "/{persona}" + path, self.named_card, methods=["GET"]) for path in CARD_PATHS),
        ]

    def persona(self, request: Request, named: bool) -> Persona:
        catalog = server_state(request).catalog
        if not named:
            return catalog.default
        name = request.path_params["persona"]
        persona = catalog.get(name) if name.strip() else None
        if persona is None:
            raise errors.APIError(404, f"There is no persona named '{name}' on this server.",
                                  code="persona_not_found")
        return persona

    def base_url(self, request: Request) -> str:
        if self.public_url:
            return self.public_url
        host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
        return f"{request.url.scheme}://{host}"

    async def named_card(self, request: Request) -> Response:
        return self._card(request, self.persona(request, named=True), named=True)

    async def default_card(self, request: Request) -> Response:
        return self._card(request, self.persona(request, named=False), named=False)

    def _card(self, request: Request, persona: Persona, *, named: bool) -> Response:
        url = self.base_url(request) + endpoint_path(persona if named else None)
        card = agent_card(persona, url, api_key=bool(server_state(request).settings.api_key))
        return json_response(agent_card_to_dict(card))

    def dispatcher(self, request: Request, persona: Persona) -> JsonRpcDispatcher:
        key = model_key(persona.name)
        known = self._dispatchers.get(key)
        if known is not None and known[0] is persona:
            return known[1]
        catalog = server_state(request).catalog
        # A persona replaced or removed since: its handler goes once its answers in flight are done.
        for stale in [k for k, (p, _) in self._dispatchers.items() if catalog.personas.get(k) is not p]:
            del self._dispatchers[stale]
        settings = server_state(request).settings
        card = agent_card(persona, endpoint_path(persona), api_key=bool(settings.api_key))
        handler = _Handler(agent_executor=PersonaAgent(persona, settings), task_store=RecentTasks(),
                           agent_card=card)
        # On SIGTERM, streams get the server's graceful time to finish (a little less: then uvicorn ends the rest).
        grace = max(0.0, settings.graceful_timeout - 1.0)
        dispatcher = JsonRpcDispatcher(handler, context_builder=_CallContexts(), enable_v0_3_compat=True,
                                       shutdown_grace_period=grace)
        if catalog.get(persona.name) is persona:
            self._dispatchers[key] = (persona, dispatcher)
        return dispatcher


class _Endpoint:
    """A persona's JSON-RPC endpoint (an ASGI app, to outlive the response: the work it started ends with it)."""

    def __init__(self, a2a: A2A, *, named: bool) -> None:
        self.a2a = a2a
        self.named = named

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        persona = self.a2a.persona(request, self.named)
        dispatcher = self.a2a.dispatcher(request, persona)
        # Our body limit, not the SDK's read; then the connection is free to watch for the client leaving.
        request._body = await read_body(request)
        if not request._body.strip():
            raise errors.APIError(400, "The request body is empty; expected a JSON-RPC request.", code="invalid_json")
        exchange = scope[EXCHANGE] = Exchange()
        try:
            response = await unless_disconnected(request, dispatcher.handle_requests(request))
            await response(scope, receive, send)
        finally:
            exchange.end()
