"""The ASGI application: routes of every wire protocol over one catalog of personas."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp

from persona_server import metrics
from persona_server.api.browser import BrowserGuard, HostPolicy, OriginPolicy
from persona_server.api.context import ServerState
from persona_server.api.front_door import FrontDoor
from persona_server.api.routes import all_routes, open_paths
from persona_server.api.routing import PathTableRouter
from persona_server.budget import RequestBudget
from persona_server.catalog import Catalog
from persona_server.limits import Limits, Rate
from persona_server.settings import Settings
from persona_server.vectorstores.service import open_existing, vector_stores_of


def create_app(catalog: Catalog, settings: Settings) -> ASGIApp:
    mcp = None
    if settings.mcp:
        from persona_server.api.mcp_server import McpEndpoint

        mcp = McpEndpoint(catalog, settings)
    stores = vector_stores_of(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await catalog.start()  # solvers load in the background: the server listens at once
        await open_existing(stores)
        try:
            # The MCP sessions end before the personas they use are closed.
            async with mcp.lifespan() if mcp is not None else contextlib.nullcontext():
                yield
        finally:
            await stores.close()
            await catalog.close()
            metrics.process_exit()

    routes = all_routes()
    also_open = None
    if settings.a2a:
        from persona_server.api import a2a

        routes = [*routes, *a2a.A2A(settings.a2a_url).routes()]
        also_open = a2a.is_card_path
    if mcp is not None:
        # POST only: a stateless server has no stream to offer on GET (405 says so, as MCP allows), no session to
        # DELETE.
        routes = [*routes, Route("/mcp", mcp.app, methods=["POST"])]
    app = Starlette(routes=routes, lifespan=lifespan)
    # Every protocol's routes found in the same time, however late in the list (see api/routing.py).
    # No slash redirects: the front door strips trailing slashes, so one would loop (`/ui` -> `/ui/` -> `/ui`).
    app.router = PathTableRouter(app.router.routes, lifespan=lifespan, redirect_slashes=False)
    app.persona_server = ServerState(catalog, settings, int(time.time()))  # type: ignore[attr-defined]
    app.vector_stores = stores  # type: ignore[attr-defined]
    inner: ASGIApp = app.router.app
    limits = None
    if settings.max_concurrent or settings.rate_limit:
        rate = Rate.parse(settings.rate_limit) if settings.rate_limit else None
        limits = Limits(inner, max_concurrent=settings.max_concurrent, rate=rate,
                        key_by_api_key=bool(settings.api_key),
                        shared_rate=catalog.state.rate_limiter(rate) if rate else None)
        if rate is not None:  # without one, the front door's count of requests in flight is all there is to do
            inner = limits
    hosts = HostPolicy(settings.allowed_hosts) if settings.is_loopback else None
    return FrontDoor(
        app, inner, routes, guard=BrowserGuard(OriginPolicy(settings.cors_origins), hosts),
        api_key=settings.api_key, open_paths=open_paths(), also_open=also_open, limits=limits,
        budget=RequestBudget(settings.request_timeout) if settings.request_timeout > 0 else None,
        # What uvicorn trusts by default, and its environment variable.
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
    )
