"""What every handler of every protocol needs: the server's state, the request body, JSON responses, ids.

These are on the hot path of every request, so they skip Starlette's conveniences: the state is a plain
attribute of the app (not `app.state`'s dynamic lookup), and the body is read straight from the ASGI channel
(not through `Request.body()`'s generator).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from persona_server.api.errors import APIError, from_validation_error, parse_json
from persona_server.api.streaming import ClientGone
from persona_server.limits import refuse
from persona_server.tooling import json_text

if TYPE_CHECKING:
    from persona_server.catalog import Catalog
    from persona_server.settings import Settings

@dataclass(frozen=True, slots=True)
class ServerState:
    catalog: Catalog
    settings: Settings
    started: int  # Unix time the server started: the `created` of every model


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.persona_server
    return state


async def read_body(request: Request) -> bytes:
    """The whole request body. Raises ClientGone if the client leaves, 413 if it is larger than
    `max_body_size`: from Content-Length before reading any of it, else (chunked) as soon as it is."""
    limit = server_state(request).settings.max_body_size
    for name, value in request.scope["headers"]:
        if name == b"content-length":
            if not value.isdigit() or int(value) > limit:
                raise _too_large(limit)
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        if not message.get("more_body", False):
            return b"".join(chunks) + chunk if chunks else chunk
        chunks.append(chunk)


def _too_large(limit: int) -> APIError:
    error = refuse("body_size", 413, f"The request body is larger than the server's limit of {limit} bytes.")
    # The rest of the body is never read: the connection must close after the answer.
    error.headers = {"Connection": "close"}
    return error


class JSONBody(Response):
    """A JSON answer: Starlette's Response with its two headers made directly, skipping the general header
    handling it does for every response (a tenth of the server's own work on a small answer)."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int = 200) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]


def json_response(data: Any, status: int = 200) -> Response:
    try:
        body = orjson.dumps(data)
    except TypeError:  # an integer beyond 64 bits that a client sent and an answer echoes (tool schemas)
        body = json_text(data).encode()
    return JSONBody(body, status)


def new_id(prefix: str) -> str:
    # Unique like a uuid4 (ids need not be secret), at a fraction of its cost on the hot path.
    return f"{prefix}{random.getrandbits(128):032x}"


Body = TypeVar("Body", bound=BaseModel)


async def read_model(request: Request, model: type[Body]) -> Body:
    """The request body validated as `model`, straight from bytes: 400 for an empty body, bad JSON, something
    other than an object, or a wrong field (named by its JSON path, never echoing the value)."""
    raw = await read_body(request)
    if not raw.strip():
        parse_json(raw)  # raises the "empty body" error
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        if first["type"] == "json_invalid":
            parse_json(raw)  # raises the "not valid JSON" error with the decoder's position
        if not first["loc"]:
            raise APIError(400, "The request body must be a JSON object.", code="invalid_json") from None
        raise from_validation_error(exc) from None
