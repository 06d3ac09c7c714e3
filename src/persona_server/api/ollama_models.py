"""Ollama's model management routes: pull succeeds for a persona that exists, the rest are refused.

Clients such as Open WebUI and scripts that `ollama pull` before they chat must be able to proceed, so pulling a
persona answers Ollama's progress stream (`pulling manifest` ... `success`) or, with `stream: false`, its last
object; there is nothing to download. Creating, copying, deleting and pushing models would change persona files,
which are the operator's to edit: those routes answer 403.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from persona_server.api.context import json_response, read_body, server_state
from persona_server.api.errors import APIError, parse_json
from persona_server.api.ollama import NDJSON
from persona_server.catalog import Catalog

# What Ollama reports while pulling a model that is already complete: no layers to fetch.
PULL_STEPS = ("pulling manifest", "verifying sha256 digest", "writing manifest", "success")


async def pull(request: Request) -> Response:
    data = parse_json(await read_body(request))
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object")
    model = data.get("model") or data.get("name")
    if not isinstance(model, str) or not model.strip():
        raise APIError(400, "model is required")
    catalog: Catalog = server_state(request).catalog
    # Exact names only (with or without `:latest`): pulling "x" must not report success for the default persona.
    if catalog.get(model) is None:
        raise APIError(404, f"model '{model}' not found: there is no persona by that name")
    if data.get("stream") is False:
        return json_response({"status": "success"})
    lines = b"".join(orjson.dumps({"status": step}) + b"\n" for step in PULL_STEPS)
    return StreamingResponse(iter([lines]), media_type=NDJSON)


async def refuse(request: Request) -> Response:
    # /api/blobs/... is the first step of `create` with files.
    action = "create" if request.url.path.startswith("/api/blobs") else request.url.path.rsplit("/", 1)[-1]
    raise APIError(403, f"personas are files: to {action} a model, add, copy, edit or delete a persona file on "
                        "the server (files in a --personas directory are picked up without a restart)")


def routes() -> list[Route]:
    return [
        Route("/api/pull", pull, methods=["POST"]),
        Route("/api/create", refuse, methods=["POST"]),
        Route("/api/copy", refuse, methods=["POST"]),
        Route("/api/delete", refuse, methods=["DELETE", "POST"]),
        Route("/api/push", refuse, methods=["POST"]),
        Route("/api/blobs/{digest:path}", refuse, methods=["HEAD", "POST"]),
    ]
