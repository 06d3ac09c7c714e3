"""Routing: the path-table router and the vendor route groups answer exactly as Starlette's ordered scan of a flat
route list would, only without the scan; the metrics' route labels find the same routes."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Route
from starlette.testclient import TestClient

from persona_server.api.observe import UNMATCHED, RouteTemplates
from persona_server.api.routes import PROTOCOLS, all_routes, flat_routes
from persona_server.api.routing import MAX_REMEMBERED, PathTableRouter, PrefixedRoutes, static_table


def answer(text: str):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(text + request.path_params.get("name", ""))
    return endpoint


ROUTES = [
    Route("/things/{name}", answer("dynamic:"), methods=["GET"]),
    Route("/things/special", answer("static-get"), methods=["GET"]),  # shadowed by the route above
    Route("/things/special", answer("static-post"), methods=["POST"]),
    Route("/", answer("index"), methods=["GET"]),
    Route("/", answer("root-post"), methods=["POST"]),
    Route("/only-get", answer("only-get"), methods=["GET"]),
]
# The same routes, some behind prefix groups: a group's static route is in the table unless an earlier route
# with parameters (in a group whose prefixes the path passes, or outside any group) could claim it.
GROUPED = [
    PrefixedRoutes(["/vendor/"], [Route("/vendor/{name}", answer("vendor:"), methods=["GET"]),
                                  Route("/vendor/info", answer("vendor-info"), methods=["GET"])]),
    PrefixedRoutes(["/other/"], [Route("/other/info", answer("other-info"), methods=["GET"]),
                                 Route("/outside", answer("hidden"), methods=["GET"])]),  # not under its prefix
    *ROUTES,
]
REQUESTS = [("GET", "/things/special"), ("POST", "/things/special"), ("GET", "/things/x"), ("GET", "/"),
            ("POST", "/"), ("POST", "/only-get"), ("GET", "/missing"), ("DELETE", "/"), ("GET", "/vendor/info"),
            ("GET", "/vendor/x"), ("POST", "/vendor/x"), ("GET", "/other/info"), ("GET", "/outside"),
            ("DELETE", "/things/x"), ("GET", "/things/y")]


def _flat(routes: list) -> list[Route]:  # type: ignore[type-arg]
    return [m for r in routes for m in (r.routes if isinstance(r, PrefixedRoutes) else [r])]


def test_same_answers_as_starlette() -> None:
    for routes in (ROUTES, GROUPED):
        plain = Starlette(routes=[r for r in _flat(routes) if r.path != "/outside"])
        fast = Starlette(routes=routes)
        fast.router = PathTableRouter(fast.router.routes)
        with TestClient(plain) as a, TestClient(fast) as b:
            for method, path in REQUESTS * 2:  # the second time, paths with parameters are remembered
                expected, got = a.request(method, path), b.request(method, path)
                assert (got.status_code, got.text) == (expected.status_code, expected.text), (method, path)
    # A path an earlier route with parameters could claim keeps the scan; the others are in the table.
    assert set(static_table(ROUTES)) == {"/", "/only-get"}
    assert set(static_table(GROUPED)) == {"/", "/only-get", "/other/info"}


def test_remembered_paths_are_bounded() -> None:
    app = Starlette(routes=ROUTES)
    router = app.router = PathTableRouter(app.router.routes)
    with TestClient(app) as client:
        for index in range(MAX_REMEMBERED + 10):
            assert client.get(f"/things/n{index}").text == f"dynamic:n{index}"
            assert len(router._matched) <= MAX_REMEMBERED
        assert client.get("/things/n1").text == "dynamic:n1"  # forgotten or not, the same answer
        assert client.post("/things/n1").status_code == 405  # a method no route takes is never remembered
        assert ("/things/n1", "POST") not in router._matched


CASES = {
    ("POST", "/v1/chat/completions"): "/v1/chat/completions",
    ("GET", "/v1/models/llama3:latest"): "/v1/models/{model_id}",
    ("POST", "/v1/messages"): "/v1/messages",
    ("POST", "/anthropic/v1/messages/count_tokens"): "/anthropic/v1/messages/count_tokens",
    ("POST", "/v1beta/models/Fixed:streamGenerateContent"): "/v1beta/models/{model}:streamGenerateContent",
    ("POST", "/v1/models/Fixed:generateContent"): "/v1/models/{model}:generateContent",
    ("POST", "/model/arn:aws:bedrock:us-east-1:1:inference-profile/x/invoke"): "/model/{model_id}/invoke",
    ("POST", "/bedrock/model/fixed/converse-stream"): "/bedrock/model/{model_id}/converse-stream",
    ("POST", "/api/chat"): "/api/chat",
    ("POST", "/v2/chat"): "/v2/chat",
    ("POST", "/v1/chat"): "/v1/chat",
    ("POST", "/cohere/v1/generate"): "/cohere/v1/generate",
    ("POST", "/"): "/",
    ("POST", "/generate_stream"): "/generate_stream",
    ("GET", "/tgi/models/Fixed/info"): "/tgi/models/{model}/info",
    ("POST", "/v1/responses"): "/v1/responses",
}


def _route_for(method: str, path: str) -> tuple[str, Match]:
    """The template of the route the app's routes give, as Router.app does (first full match, else partial)."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    partial = None
    for route in all_routes():
        match, child = route.matches(scope)
        chosen = child.get("persona_server.route", route) if isinstance(route, PrefixedRoutes) else route
        if match is Match.FULL:
            return chosen.path.replace(":path}", "}"), match
        if match is Match.PARTIAL and partial is None:
            partial = chosen.path.replace(":path}", "}")
    return partial or "", Match.PARTIAL if partial else Match.NONE


def test_router_and_labels_agree() -> None:
    templates = RouteTemplates(all_routes())
    table = static_table(all_routes())
    for (method, path), template in CASES.items():
        assert _route_for(method, path) == (template, Match.FULL), path
        if path in table:  # the dict finds the route the scan finds
            assert any(route.matches({"type": "http", "method": method, "path": path})[0] is Match.FULL
                       and route.path == template for route in table[path]), path
        if not (method == "GET" and path.startswith("/v1/models/")):  # labels follow paths, not methods
            assert templates(path) == template, path
    assert templates("/nowhere") == UNMATCHED
    # Every vendor group's static routes are in the table (their prefixes make them cheap to reach anyway).
    grouped = [r.path for g in all_routes() if isinstance(g, PrefixedRoutes) for r in g.routes if "{" not in r.path]
    assert grouped and set(grouped) <= set(table)


def test_groups_hold_every_vendor_route_once() -> None:
    # A route is a path and its methods: one path may have a route per method (`GET` and `POST /v1/files`).
    grouped = [(r.path, *sorted(r.methods)) for g in all_routes() if isinstance(g, PrefixedRoutes) for r in g.routes]
    vendors = [(r.path, *sorted(r.methods)) for p in PROTOCOLS if p.prefixes for r in p.routes()]
    assert sorted(grouped) == sorted(vendors) and len(set(grouped)) == len(grouped)
    assert {path for path, *_ in grouped} <= {r.path for r in flat_routes()}
    # Each group's prefixes cover its routes.
    for group in all_routes():
        if isinstance(group, PrefixedRoutes):
            assert all(route.path.startswith(group.prefixes) for route in group.routes)
