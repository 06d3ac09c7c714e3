"""The ASGI application: routes of every wire protocol over one catalog of personas."""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from persona_server import metrics
from persona_server.api import errors
from persona_server.api.browser import BrowserGuard, HostPolicy, OriginPolicy
from persona_server.api.context import ServerState
from persona_server.api.observe import Observe
from persona_server.api.prefixes import strip_vendor_prefix
from persona_server.api.routes import all_routes, open_paths
from persona_server.api.routing import PathTableRouter
from persona_server.api.streaming import ClientGone
from persona_server.budget import RequestBudget
from persona_server.catalog import Catalog
from persona_server.chain import AnswerFailed, NoAnswer
from persona_server.limits import Limits, Rate
from persona_server.settings import Settings
from persona_server.vectorstores.service import open_existing, vector_stores_of

_SLASHES = re.compile(r"/{2,}")
# Readiness probes must work without a key, and the API description holds nothing secret; nothing else does
# (the index lists the models).
_OPEN_PATHS = open_paths()


class NormalizePath:
    """Collapses `//` and drops a trailing `/`: openai 0.28 with `api_base=".../v1/"` posts to `/v1//chat/...`.
    Also maps the original server's `/openai/v1/...` and `/ollama/api/...` onto `/v1/...` and `/api/...`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if "//" in path or (path.endswith("/") and path != "/"):
                path = _SLASHES.sub("/", path)
                if len(path) > 1:
                    path = path.rstrip("/") or "/"
                scope = dict(scope, path=path, raw_path=path.encode())
            if path.startswith(("/openai/", "/ollama/")):
                path = strip_vendor_prefix(path)
                scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)


class RequireApiKey:
    """With an API key configured, every route but the health probe needs the key, in whichever place the
    client's SDK sends it: `Authorization: Bearer KEY` (OpenAI, Anthropic, Bedrock API keys), `x-api-key`
    (Anthropic), `x-goog-api-key` or the `key` query parameter (Gemini)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.api_key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = (_bearer_token(headers.get(b"authorization", b"")) or headers.get(b"x-api-key")
                 or headers.get(b"x-goog-api-key") or _query_key(scope))
        if hmac.compare_digest(given, self.api_key):
            await self.app(scope, receive, send)
            return
        metrics.record_refusal("api_key")
        error = errors.APIError(401, "Incorrect API key provided.", code="invalid_api_key")
        await errors.error_for_path(scope["path"], error, scope["method"])(scope, receive, send)


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


def create_app(catalog: Catalog, settings: Settings) -> ASGIApp:
    stores = vector_stores_of(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await catalog.start()  # solvers load in the background: the server listens at once
        await open_existing(stores)
        try:
            yield
        finally:
            await stores.close()
            await catalog.close()
            metrics.process_exit()

    routes = all_routes()
    app = Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: errors.http_exception_handler,
            errors.APIError: errors.api_error_handler,
            ClientGone: errors.client_gone_handler,
            AnswerFailed: errors.answer_error_handler,
            NoAnswer: errors.answer_error_handler,
            Exception: errors.unexpected_error_handler,
        },
        lifespan=lifespan,
    )
    # Every protocol's routes found in the same time, however late in the list (see api/routing.py).
    app.router = PathTableRouter(app.router.routes, lifespan=lifespan)
    app.persona_server = ServerState(catalog, settings, int(time.time()))  # type: ignore[attr-defined]
    app.vector_stores = stores  # type: ignore[attr-defined]
    asgi: ASGIApp = app
    if settings.max_concurrent or settings.rate_limit:
        rate = Rate.parse(settings.rate_limit) if settings.rate_limit else None
        asgi = Limits(asgi, max_concurrent=settings.max_concurrent, rate=rate,
                      key_by_api_key=bool(settings.api_key))
    if settings.api_key:
        asgi = RequireApiKey(asgi, settings.api_key)
    # Before the key check: preflights carry no key, and a hostile page is refused whatever key it has.
    hosts = HostPolicy(settings.allowed_hosts) if settings.is_loopback else None
    asgi = BrowserGuard(asgi, OriginPolicy(settings.cors_origins), hosts)
    if settings.request_timeout > 0:
        asgi = RequestBudget(asgi, settings.request_timeout)
    # Outside the key check and the browser guard, so refused requests get an id and are counted too.
    return NormalizePath(Observe(asgi, routes))
