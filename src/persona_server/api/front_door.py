"""The front door: the one ASGI layer every HTTP request passes before its route, in this order:

0. a trusted proxy's `X-Forwarded-For` and `X-Forwarded-Proto` applied to the client address and scheme (by
   uvicorn's ProxyHeadersMiddleware, called only for requests that carry them);
1. the path made canonical (`//` collapsed, a trailing `/` dropped, the original's `/openai/...` and `/ollama/...`
   prefixes mapped onto ours);
2. the request id (the client's `X-Request-Id` when sane, else a new one: on the response and on every log line)
   and the request's metrics, refused requests included;
3. the request budget (`--request-timeout`, see `budget`);
4. the browser guard (Host and Origin checks, preflights, CORS headers on every response, see `browser`);
5. the API key, where the client's SDK sends it;
6. the bound on requests in flight, then the routes (behind the rate limit, `limits.Limits`), whose exceptions
   become errors in the route's own format here.

Why one layer and not a middleware per concern: each ASGI layer costs a coroutine per request and another per
message sent, a few microseconds in all, a tenth of a small request (see bench/README.md, "Throughput"). Starlette's
own exception middlewares are replaced by the handling below for the same reason.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from persona_server import logs, metrics
from persona_server.api import browser, errors, web
from persona_server.api.observe import METHODS, RouteTemplates, new_request_id, sane_request_id
from persona_server.api.prefixes import strip_vendor_prefix
from persona_server.api.streaming import REQUEST_TASK, ClientGone
from persona_server.budget import RequestBudget
from persona_server.chain import AnswerFailed, NoAnswer
from persona_server.limits import UNLIMITED_PATHS, Limits

log = logging.getLogger(__name__)

_SLASHES = re.compile(r"/{2,}")
_NO_HANDLERS: tuple[dict[Any, Any], dict[Any, Any]] = ({}, {})  # Starlette's (exception, status) handler tables
Handler = Callable[[Request, Exception], Awaitable[Response]]
# Exceptions a route may raise, and who answers them (checked in order: the first match wins).
HANDLERS: tuple[tuple[type[Exception], Handler], ...] = (
    (errors.APIError, errors.api_error_handler),
    (HTTPException, errors.http_exception_handler),
    (ClientGone, errors.client_gone_handler),
    (AnswerFailed, errors.answer_error_handler),
    (NoAnswer, errors.answer_error_handler),
)


def canonical_path(path: str) -> str:
    """openai 0.28 with `api_base=".../v1/"` posts to `/v1//chat/...`; the original serves `/openai/v1/...`."""
    if "//" in path or (path.endswith("/") and path != "/"):
        path = _SLASHES.sub("/", path)
        if len(path) > 1:
            path = path.rstrip("/") or "/"
    if path.startswith(("/openai/", "/ollama/")):
        path = strip_vendor_prefix(path)
    return path


class FrontDoor:
    def __init__(self, app: ASGIApp, router: ASGIApp, routes: Sequence[BaseRoute], *, guard: browser.BrowserGuard,
                 api_key: str | None, open_paths: frozenset[str], budget: RequestBudget | None,
                 also_open: Callable[[str], bool] | None = None, limits: Limits | None = None,
                 forwarded_allow_ips: str | None = None) -> None:
        self.app = app  # the Starlette app: the lifespan, and `request.app` for the routes
        self.router = router  # the routes, behind the limits
        self.templates = RouteTemplates(routes)
        self.guard = guard
        self.api_key = api_key.encode() if api_key else None
        # Readiness probes must work without a key, and the API description holds nothing secret.
        self.open_paths = open_paths
        # Paths of features behind a flag that must stay open too (A2A agent cards), when they are on.
        self.also_open = also_open
        self.budget = budget
        # The bound on requests in flight (and, as the `router` layer, the rate), if any (see limits.Limits).
        self.limits = limits
        # uvicorn's own rules for proxy headers (the server runs with its `proxy_headers` off: as a layer of its
        # own it costs every request a microsecond, though few carry such headers).
        self.proxy = ProxyHeadersMiddleware(_nothing, forwarded_allow_ips) if forwarded_allow_ips else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # the lifespan, websockets
            return
        path = scope["path"]
        canonical = canonical_path(path)
        if canonical != path:
            scope = dict(scope, path=canonical, raw_path=canonical.encode())
        scope["app"] = self.app
        # Routes from sub-routers that kept Starlette's endpoint wrapper look their exception handlers up here;
        # none: what they raise comes to `_failed`.
        scope["starlette.exception_handlers"] = _NO_HANDLERS
        began = time.perf_counter()
        headers = dict(scope["headers"])  # one C-level pass; cheaper than scanning the list for each header
        if self.proxy is not None and (b"x-forwarded-for" in headers or b"x-forwarded-proto" in headers):
            await self.proxy(scope, receive, send)
        request_id = sane_request_id(headers.get(b"x-request-id")) or new_request_id()
        record = metrics.RequestRecord()
        id_token = logs.request_id.set(request_id)
        record_token = metrics.current.set(record)
        task = scope[REQUEST_TASK] = asyncio.current_task()
        budget_token = self.budget.begin(task) if task is not None and self.budget is not None else None
        origin = headers.get(b"origin")
        extra = [(b"x-request-id", request_id.encode())]  # on every response; the CORS headers once allowed
        status = 0  # no response started yet
        streaming = False

        async def answer(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            elif not streaming and message.get("more_body"):
                # A body sent in pieces is a stream (SSE, NDJSON); cheaper to tell than reading the headers.
                streaming = True
                metrics.OPEN_STREAMS.inc()
            await send(message)

        try:
            refusal = self.guard.refusal(headers, scope["method"])
            if refusal is not None:
                metrics.record_refusal("browser_guard")
                await self._refuse(scope, receive, answer, errors.APIError(403, refusal, code="forbidden"))
                return
            if origin is not None:
                extra.extend(browser.cors_headers(origin))
                if browser.is_preflight(headers, scope["method"]):
                    await browser.preflight(headers, answer)
                    return
            if self.api_key is not None and not self._open(scope) and not hmac.compare_digest(
                    _given_key(headers, scope), self.api_key):
                metrics.record_refusal("api_key")
                await self._refuse(scope, receive, answer,
                                   errors.APIError(401, "Incorrect API key provided.", code="invalid_api_key"))
            else:
                limits = self.limits
                if limits is not None and scope["path"] not in UNLIMITED_PATHS:
                    busy = limits.busy()
                    if busy is not None:
                        await self._refuse(scope, receive, answer, busy)
                        return
                    limits.active += 1
                else:
                    limits = None
                try:
                    await self.router(scope, receive, answer)
                except Exception as exc:
                    if status:
                        raise  # too late for an error response: the server closes the connection
                    response = await _failure_response(exc, scope, receive)
                    await response(scope, receive, answer)
                finally:
                    if limits is not None:
                        limits.active -= 1
        except asyncio.CancelledError:
            if task is None or self.budget is None or not self.budget.cancelled(task):
                raise
            log.warning("%s %s: cancelled after the request budget of %g s", scope["method"], scope["path"],
                        self.budget.seconds)
            if not status:
                error = errors.APIError(504, f"No answer within the request budget of {self.budget.seconds:g} s.",
                                        code="timeout")
                await self._refuse(scope, receive, answer, error)
        finally:
            if budget_token is not None:
                self.budget.end(task, budget_token)  # type: ignore[union-attr, arg-type]
            if streaming:
                metrics.OPEN_STREAMS.dec()
            method = scope["method"] if scope["method"] in METHODS else "other"
            metrics.request_done(self.templates(scope["path"]), method, status or 500, record,
                                 time.perf_counter() - began)
            metrics.current.reset(record_token)
            logs.request_id.reset(id_token)

    def _open(self, scope: Scope) -> bool:
        """Whether the path needs no key: the readiness probe, the API description, the chat page (which asks
        for the key) and its files, and what a feature behind a flag keeps open (A2A agent cards)."""
        path = scope["path"]
        if path in self.open_paths:
            return True
        if path == "/" and scope["method"] in ("GET", "HEAD") and web.wants_page(scope["headers"]):
            return True  # the page; TGI's `POST /` is not open
        return self.also_open is not None and self.also_open(path)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, error: errors.APIError) -> None:
        await errors.error_for_path(scope["path"], error, scope["method"])(scope, receive, send)


async def _nothing(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind `FrontDoor.proxy`: the front door goes on itself once the scope is updated."""


async def _failure_response(exc: Exception, scope: Scope, receive: Receive) -> Response:
    """The response to what a route raised; our bugs are logged in full and answered without internals."""
    request = Request(scope, receive)
    for kind, handler in HANDLERS:
        if isinstance(exc, kind):
            return await handler(request, exc)
    return await errors.unexpected_error_handler(request, exc)


def _given_key(headers: dict[bytes, bytes], scope: Scope) -> bytes:
    """The key in whichever place the client's SDK sends it: `Authorization: Bearer KEY` (OpenAI, Anthropic,
    Bedrock API keys), `x-api-key` (Anthropic), `x-goog-api-key` or the `key` query parameter (Gemini)."""
    return (_bearer_token(headers.get(b"authorization", b"")) or headers.get(b"x-api-key")
            or headers.get(b"x-goog-api-key") or _query_key(scope))


def _query_key(scope: Scope) -> bytes:
    """Gemini's `?key=KEY`."""
    query: bytes = scope.get("query_string", b"")
    if b"key=" not in query:
        return b""
    return next((v.encode() for k, v in parse_qsl(query.decode("latin-1")) if k == "key"), b"")


def _bearer_token(authorization: bytes) -> bytes:
    """The token of `Authorization: Bearer TOKEN`; the scheme is case-insensitive (RFC 9110), so `bearer` too."""
    scheme, _, token = authorization.strip().partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else b""
