"""Routing that costs the same for every protocol: a dict for static paths, prefix groups for the rest.

Starlette's router tries every route in order with a regex each (about half a microsecond to a microsecond a
miss), so a route late in the list pays for all the routes before it: with seven protocols, fifty routes, that
is a third of a small request. Two things keep that away:
- `PathTableRouter` looks paths without parameters up in a dict (most routes are such);
- `PrefixedRoutes` puts a vendor protocol's routes behind one `str.startswith` test, so the paths with
  parameters that do go through the scan pass another protocol's routes at the cost of one test.
- a path with parameters that the scan matched is remembered with its route and parameters (per method, a
  bounded table), so Gemini's, Bedrock's and TGI's routes cost a dict look-up after their first request too.
Everything else (404, 405, a first request) goes Starlette's way, and the answer is always the one Starlette's
ordered scan would give.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

_CHOSEN = "persona_server.route"

# A route as the scan meets it, with the prefixes its group tests first (None: not in a group).
Reached = tuple[BaseRoute, tuple[str, ...] | None]


class PrefixedRoutes(BaseRoute):
    """`routes`, tried only for paths that start with one of `prefixes`."""

    def __init__(self, prefixes: Sequence[str], routes: Sequence[BaseRoute]) -> None:
        self.prefixes = tuple(prefixes)
        self.routes = list(routes)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            return Match.NONE, {}
        partial: tuple[BaseRoute, Scope] | None = None
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                return Match.FULL, {**child, _CHOSEN: route}
            if match is Match.PARTIAL and partial is None:
                partial = route, child
        if partial is not None:
            return Match.PARTIAL, {**partial[1], _CHOSEN: partial[0]}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: BaseRoute = scope.pop(_CHOSEN)
        scope["route"] = route  # what the request actually matched, for anything that reports routes
        await route.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        for route in self.routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                pass
        raise NoMatchFound(name, path_params)


def scan_order(routes: Sequence[BaseRoute]) -> list[Reached]:
    """Every route in the order the scan tries it, groups opened."""
    reached: list[Reached] = []
    for route in routes:
        if isinstance(route, PrefixedRoutes):
            reached.extend((member, route.prefixes) for member in route.routes)
        else:
            reached.append((route, None))
    return reached


def _static(route: BaseRoute) -> bool:
    return isinstance(route, Route) and not route.param_convertors


def static_table(routes: Sequence[BaseRoute]) -> dict[str, list[Route]]:
    """The routes without parameters by path, in scan order, where the scan would find them first: a path an
    earlier route with parameters could claim (or a route its group's prefixes hide) is left to the scan."""
    reached = scan_order(routes)
    if any(getattr(route, "path_regex", None) is None for route, _ in reached):
        return {}  # a route we cannot reason about: keep Starlette's scan for everything
    table: dict[str, list[Route]] = {}
    for index, (route, prefixes) in enumerate(reached):
        if not _static(route):
            continue
        path = route.path  # type: ignore[attr-defined]
        if prefixes is not None and not path.startswith(prefixes):
            continue
        if any(not _static(earlier) and (guard is None or path.startswith(guard))
               and earlier.path_regex.match(path)  # type: ignore[attr-defined]
               for earlier, guard in reached[:index]):
            continue
        table.setdefault(path, []).append(route)  # type: ignore[arg-type]
    return table


# Paths with parameters remembered (see PathTableRouter); they are the client's to choose, so the table is
# emptied when full rather than grown.
MAX_REMEMBERED = 1024


class PathTableRouter(Router):
    """Starlette's router, with the static paths of `routes` (groups included) found in a dict, and the paths
    with parameters it has matched remembered."""

    def __init__(self, routes: Sequence[BaseRoute], **kwargs: Any) -> None:
        super().__init__(routes, **kwargs)
        self._by_path = static_table(self.routes)
        # (path, method) -> the route the scan matches first, and its path parameters. Only when every route
        # is one whose match depends on nothing but the path and method (static_table says so).
        self._remember = bool(self._by_path)
        self._matched: dict[tuple[str, str], tuple[Route, dict[str, Any]]] = {}

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            path, method = scope["path"], scope["method"]
            for route in self._by_path.get(path, ()):
                # What Route.matches and Route.handle would decide for a path without parameters that is known
                # to match, without their regex, path-parameter dicts and second method check.
                if route.methods is None or method in route.methods:
                    await route.app(self._chose(scope, route, {}), receive, send)
                    return
            if self._remember:
                key = (path, method)
                hit = self._matched.get(key) or self._first_full_match(scope, key)
                if hit is not None:
                    await hit[0].app(self._chose(scope, hit[0], dict(hit[1])), receive, send)
                    return
        await super().app(scope, receive, send)  # 404, 405

    def _chose(self, scope: Scope, route: Route, params: dict[str, Any]) -> Scope:
        """The scope as Starlette's scan leaves it for the route it chose."""
        scope.setdefault("router", self)
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = params
        return scope

    def _first_full_match(self, scope: Scope, key: tuple[str, str]) -> tuple[Route, dict[str, Any]] | None:
        """The route Starlette's scan would hand the request to, as a full match (path and method), if any."""
        for entry in self.routes:
            match, child = entry.matches(scope)
            if match is Match.FULL:
                route = child.get(_CHOSEN, entry)
                if not isinstance(route, Route):
                    return None  # not a plain route: leave it to Starlette
                if len(self._matched) >= MAX_REMEMBERED:
                    self._matched.clear()
                hit = self._matched[key] = route, child.get("path_params", {})
                return hit
        return None


def lean_endpoints(routes: Sequence[BaseRoute]) -> None:
    """Call the async function endpoints of `routes` without Starlette's per-route exception wrapper (a layer and a
    send wrapper per request): what they raise is answered by the front door (api/front_door.py)."""
    for route, _ in scan_order(routes):
        if isinstance(route, Route) and inspect.iscoroutinefunction(route.endpoint):
            route.app = _endpoint_app(route.endpoint)


def _endpoint_app(endpoint: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    return app
