"""Health and status: is the server ready, and what does it serve (never any solver config values)."""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from persona_server import __version__
from persona_server.api import web
from persona_server.api.context import json_response, server_state
from persona_server.catalog import Catalog


async def health(request: Request) -> Response:
    catalog: Catalog = server_state(request).catalog
    if not catalog.ready:
        return json_response({"status": "loading"}, status=503)
    if catalog.state.degraded:
        # Still serving (without shared state): a load balancer must keep sending requests here.
        return json_response({"status": "degraded", "state": catalog.state.health()})
    return json_response({"status": "ok"})


async def status(request: Request) -> Response:
    catalog: Catalog = server_state(request).catalog
    default = catalog.default
    return json_response({
        # The original persona server's shape, for the default persona.
        "persona": default.name,
        "solvers": [slot.name for slot in default.slots if slot.state in ("ready", "loading")],
        "models": [persona.name for persona in catalog],
        # Ours: every persona with each solver's state.
        "status": "ok" if catalog.ready else "loading",
        "version": __version__,
        # Which worker process answered (with --workers N and no --state, each has its own caches and memory).
        "process": os.getpid(),
        "default_persona": default.name,
        "personas": [persona.status() for persona in catalog],
        # Persona files that could not be (re)loaded: [{"file", "problem"}].
        "problems": catalog.problems,
        # The shared HTTP pool of the network solvers: {"active", "connections", "in_use", "max_connections"}.
        "http_pool": catalog.http_pool(),
        # Where per-user state lives: {"backend": "process"} or {"backend": "redis", "status", ...}.
        "state": catalog.state.health(),
    })


async def index(request: Request) -> Response:
    """The chat page for browsers, `persona-server is running` for text/plain, else the JSON index"""
    # Browsers get the chat page, clients asking for text Ollama's kind of answer, the others this JSON.
    kind = web.preferred(request.headers.get("accept"))
    if kind == "html":
        response = await web.page(request)
    else:
        response = web.running(request) if kind == "text" else _index_json(request)
    response.headers["Vary"] = "Accept, Accept-Encoding" if kind == "html" else "Accept"
    return response


def _index_json(request: Request) -> Response:
    catalog: Catalog = server_state(request).catalog
    return json_response({
        "name": "persona-server",
        "version": __version__,
        "models": [persona.name for persona in catalog],
        "endpoints": ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/models", "/api/chat",
                      "/api/generate", "/api/tags", "/v2/chat", "/v1/chat", "/v1/generate", "/generate",
                      "/generate_stream", "/health", "/status", "/metrics", "/openapi.json", "/docs",
                      "/v1/personas"],
    })


def routes() -> list[Route]:
    return [
        Route("/health", health, methods=["GET"]),
        Route("/status", status, methods=["GET"]),
        Route("/", index, methods=["GET"]),
    ]
