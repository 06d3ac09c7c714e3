"""`GET /v1/personas`: what a chat page shows when it offers the personas: each one's description and chain.

Only names, states and the description: never a solver's config (which may hold keys) nor the file it came
from.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from persona_server.api.context import json_response, server_state
from persona_server.persona import Persona


def describe(persona: Persona, default: bool) -> dict[str, Any]:
    return {
        "id": persona.name,
        "object": "persona",
        "description": persona.spec.description,
        "default": default,
        "ready": persona.ready,
        # Whether it remembers earlier exchanges of a `user` (persona memory or an OpenVoiceOS memory module).
        "memory": persona.memory is not None or persona.memory_plugin is not None,
        "chain": [{"name": slot.name, "state": slot.state} for slot in persona.slots],
    }


async def list_personas(request: Request) -> Response:
    """Every persona with its description and chain of solvers"""
    catalog = server_state(request).catalog
    default = catalog.default
    return json_response({"object": "list", "data": [describe(p, p is default) for p in catalog]})


def routes() -> list[Route]:
    return [Route("/v1/personas", list_personas, methods=["GET"])]
