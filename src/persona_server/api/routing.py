"""Route groups behind one cheap prefix test, so that many protocols' routes cost every request little.

Starlette tries routes one by one with a regex each (about half a microsecond a miss): with seven protocols in
one list, a request for the last one would pay dozens of misses. A `PrefixedRoutes` group answers "not mine" with
one `str.startswith` for paths outside its prefixes, and only then tries its own routes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

_CHOSEN = "persona_server.route"


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
