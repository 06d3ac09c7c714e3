"""Request ids and request metrics, for every request on every route (errors and streams too), and `/metrics`.

A client's `X-Request-Id` is kept when it is sane (short, safe characters), else one is made; it goes back on the
response and onto every log line written while the request is handled (`logs.request_id`).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from persona_server import logs, metrics
from persona_server.api.routing import scan_order, static_table

MAX_REQUEST_ID = 128
_SANE_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID}}}")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")
UNMATCHED = "unmatched"


class RouteTemplates:
    """The route template a path belongs to (`/v1/models/{model_id}`), never the raw path: bounded labels.

    Found as the router finds routes (api/routing.py): static paths in its table, then the routes with parameters
    in scan order, a vendor group's only behind its prefixes, so vendor requests cost no scan of every template.
    """

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self._static = {path: path for path in static_table(routes)}
        # Runs of routes with parameters: (the group's prefixes or None, [(regex, template)]).
        self._dynamic: list[tuple[tuple[str, ...] | None, list[tuple[re.Pattern[str], str]]]] = []
        for route, prefixes in scan_order(routes):
            if not isinstance(route, Route) or route.path in self._static:
                continue
            if not self._dynamic or self._dynamic[-1][0] != prefixes:
                self._dynamic.append((prefixes, []))
            self._dynamic[-1][1].append((route.path_regex, _CONVERTOR.sub(r"{\1}", route.path)))

    def __call__(self, path: str) -> str:
        template = self._static.get(path)
        if template is not None:
            return template
        for prefixes, run in self._dynamic:
            if prefixes is None or path.startswith(prefixes):
                for regex, template in run:
                    if regex.match(path):
                        return template
        return UNMATCHED


def client_request_id(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE_ID.fullmatch(text) else None
    return None


def new_request_id() -> str:
    return random.randbytes(16).hex()  # unique like a uuid4, at a fraction of its cost


class Observe:
    """ASGI middleware: the request id (context, response header) and the request's metrics."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.templates = RouteTemplates(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        request_id = client_request_id(scope["headers"]) or new_request_id()
        id_header = (b"x-request-id", request_id.encode())
        record = metrics.RequestRecord()
        id_token = logs.request_id.set(request_id)
        record_token = metrics.current.set(record)
        status = 500  # what the client gets if the app fails before it answers
        streaming = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            elif not streaming and message.get("more_body"):
                # A body sent in pieces is a stream (SSE, NDJSON); cheaper to tell than reading the headers.
                streaming = True
                metrics.OPEN_STREAMS.inc()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if streaming:
                metrics.OPEN_STREAMS.dec()
            method = scope["method"] if scope["method"] in _METHODS else "other"
            metrics.request_done(self.templates(scope["path"]), method, status, record, time.perf_counter() - began)
            metrics.current.reset(record_token)
            logs.request_id.reset(id_token)


async def metrics_endpoint(request: Request) -> Response:
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
