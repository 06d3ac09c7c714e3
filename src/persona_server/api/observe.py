"""Request ids and the route labels of request metrics (recorded by the front door, api/front_door.py), and
`/metrics`.

A client's `X-Request-Id` is kept when it is sane (short, safe characters), else one is made; it goes back on the
response and onto every log line written while the request is handled (`logs.request_id`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from persona_server import metrics
from persona_server.api.routing import scan_order, static_table

MAX_REQUEST_ID = 128
_SANE_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID}}}")
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
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


def sane_request_id(value: bytes | None) -> str | None:
    """The client's `X-Request-Id` if it is safe to echo and log, else None."""
    if value is None:
        return None
    text = value.decode("latin-1")
    return text if _SANE_ID.fullmatch(text) else None


def new_request_id() -> str:
    return random.randbytes(16).hex()  # unique like a uuid4, at a fraction of its cost


async def metrics_endpoint(request: Request) -> Response:
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
