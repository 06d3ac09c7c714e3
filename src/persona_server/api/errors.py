"""Errors in each client's own format, in one place.

OpenAI clients (including the 0.28 ones) parse `{"error": {"message", "type", "param", "code"}}`; Ollama
clients parse `{"error": "..."}`. Which one a response uses is decided by the route's protocol, so an unknown
`/api/...` route answers like Ollama and everything else like OpenAI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from persona_server.chain import AnswerFailed, NoAnswer

log = logging.getLogger(__name__)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    431: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "server_error",
    503: "server_error",
}


class APIError(Exception):
    """A client-facing error raised anywhere while handling a request."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or ERROR_TYPES.get(status, "invalid_request_error")
        # Extra response headers (`Retry-After`, `Connection: close`).
        self.headers: dict[str, str] | None = None


def openai_error_body(error: APIError) -> dict[str, Any]:
    return {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}


def openai_error(error: APIError) -> Response:
    return Response(orjson.dumps(openai_error_body(error)), status_code=error.status,
                    media_type="application/json", headers=_auth_header(error))


def ollama_error(error: APIError) -> Response:
    return Response(orjson.dumps({"error": error.message}), status_code=error.status,
                    media_type="application/json", headers=_auth_header(error))


def _auth_header(error: APIError) -> dict[str, str] | None:
    if error.status == 401:
        return {"WWW-Authenticate": "Bearer", **(error.headers or {})}
    return error.headers


def json_error(body: dict[str, Any], error: APIError) -> Response:
    """A protocol's own error body with the error's status (and the header a 401 carries)."""
    return Response(orjson.dumps(body), status_code=error.status, media_type="application/json",
                    headers=_auth_header(error))


def is_ollama_path(path: str) -> bool:
    # The original server's prefix too (api/prefixes.py maps it before routing; middleware may see it first).
    return path == "/api" or path.startswith(("/api/", "/ollama/api"))


Renderer = Callable[[APIError], Response]


@dataclass(frozen=True, slots=True)
class _Format:
    render: Renderer
    paths: frozenset[str]
    prefixes: tuple[str, ...]
    post_paths: frozenset[str]
    matches: Callable[[str], bool] | None

    def owns(self, path: str, method: str) -> bool:
        return path in self.paths or path.startswith(self.prefixes) or (
            method == "POST" and path in self.post_paths) or (self.matches is not None and self.matches(path))


# The vendor protocols' error formats, by path; OpenAI's is the default (see error_for_path).
_FORMATS: list[_Format] = []


def register_error_format(render: Renderer, *, paths: Iterable[str] = (), prefixes: Iterable[str] = (),
                          post_paths: Iterable[str] = (), matches: Callable[[str], bool] | None = None) -> None:
    """Render errors on these paths with `render`: exact `paths`, everything under `prefixes`, `post_paths` for
    POST only (TGI's `POST /` shares the root with `GET /`), and what `matches` accepts, for shapes the others
    cannot say (Gemini's `/v1/models/{model}:generateContent` beside OpenAI's `/v1/models/{id}`). Exact paths
    matter where protocols share a prefix: Cohere's `/v1/chat` is not OpenAI's `/v1/chat/completions`."""
    _FORMATS.append(_Format(render, frozenset(paths), tuple(prefixes), frozenset(post_paths), matches))


def error_for_path(path: str, error: APIError, method: str = "GET") -> Response:
    """The error in the format of the protocol the path belongs to (for middleware, which has no route yet)."""
    for fmt in _FORMATS:
        if fmt.owns(path, method):
            return fmt.render(error)
    return ollama_error(error) if is_ollama_path(path) else openai_error(error)


def error_response(request: Request, error: APIError) -> Response:
    return error_for_path(request.url.path, error, request.method)


def from_validation_error(exc: ValidationError, *, prefix: str = "") -> APIError:
    """The telling problem of a request body, named by its path as the client wrote it (`stop[4]`,
    `messages[0].content`, under `prefix`); never echoes the submitted value.

    Pydantic reports a union's mismatch once per branch, with the branch in the path (`stop.str`,
    `stop.list[str]`); the branch that got furthest is the one the client meant, and branch names are dropped.
    """
    errors = exc.errors(include_input=False, include_url=False)
    located = [(_client_path(error["loc"]), error) for error in errors]
    path, first = max(located, key=lambda pair: (_depth(pair[1]["loc"]), not pair[1]["type"].endswith("_type")))
    message = first["msg"]
    if first["type"].endswith("_type"):
        # Every branch refused the value's type: say what each would take ("a valid string or a valid array").
        kinds = [e["msg"].removeprefix("Input should be ") for p, e in located
                 if p == path and e["type"].endswith("_type")]
        message = "Input should be " + " or ".join(dict.fromkeys(kinds))
    elif first["type"] == "too_long" and "max_length" in first.get("ctx", {}):
        # Name the first item too many, as the client wrote it.
        ctx = first["ctx"]
        message = f"at most {ctx['max_length']} items are allowed, got {ctx.get('actual_length', 'more')}"
        path = f"{path}[{ctx['max_length']}]"
    param = (f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path) if prefix else path
    param = param or None
    if first["type"] == "missing":
        message = f"'{param}' is a required property"
    elif first["type"] == "extra_forbidden":
        message = f"'{param}' is not supported by this server"
    elif param:
        message = f"Invalid value for '{param}': {message}"
    return APIError(400, message, param=param, code="invalid_value" if first["type"] != "missing" else None)


_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "none", "list", "dict", "bytes"})


def _is_branch(part: str | int) -> bool:
    """A union branch's name in an error path (`str`, `list[str]`, `ContentPart`), not a field name."""
    return isinstance(part, str) and (part in _TYPE_NAMES or not part.isidentifier() or part[:1].isupper())


def _depth(loc: tuple[str | int, ...]) -> int:
    return sum(1 for part in loc if not _is_branch(part))


def _client_path(loc: tuple[str | int, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _is_branch(part):
            path += f".{part}" if path else part
    return path


def answer_error(exc: AnswerFailed | NoAnswer) -> APIError:
    """A chain that ended without a whole answer, as a client error: one rule for every protocol.

    No solver answered (`"on_no_answer": "error"`): 422, as the original server answers. The answering solver
    failed midway: 502, the answer's source failed; a stream gets the same error as its last event.
    """
    if isinstance(exc, NoAnswer):
        return APIError(422, str(exc), code="no_answer")
    return APIError(502, str(exc), code="solver_failed")


def parse_json(body: bytes) -> Any:
    """Decode a request body, as a 400 error when it is not JSON."""
    if not body.strip():
        raise APIError(400, "The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise APIError(400, f"The request body is not valid JSON: {exc}", code="invalid_json") from None


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
        if is_ollama_path(request.url.path):
            message = f"404 page not found: {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} not allowed for {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(request, APIError(exc.status_code, message))


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return error_response(request, exc)


async def answer_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AnswerFailed | NoAnswer)
    return error_response(request, answer_error(exc))


async def client_gone_handler(request: Request, exc: Exception) -> Response:
    # Nobody reads this; 499 is what proxies log for "client closed request".
    return Response(status_code=499)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    # Our bug, not the client's: log it in full, answer without internals.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, APIError(500, "The server had an error while processing your request."))
