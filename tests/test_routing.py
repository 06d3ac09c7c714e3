"""Vendor route groups: the router and the metrics' route labels find the same route as a flat list would."""

from __future__ import annotations

from starlette.routing import Match

from persona_server.api.observe import UNMATCHED, RouteTemplates
from persona_server.api.routes import PROTOCOLS, all_routes, flat_routes
from persona_server.api.routing import PrefixedRoutes

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
}


def _route_for(method: str, path: str) -> tuple[str, Match]:
    """The template of the route the app's router picks, as Router.app does (first full match, else partial)."""
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
    for (method, path), template in CASES.items():
        assert _route_for(method, path) == (template, Match.FULL), path
        if not (method == "GET" and path.startswith("/v1/models/")):  # labels follow paths, not methods
            assert templates(path) == template, path
    assert templates("/nowhere") == UNMATCHED


def test_groups_hold_every_vendor_route_once() -> None:
    grouped = [r.path for g in all_routes() if isinstance(g, PrefixedRoutes) for r in g.routes]
    vendors = [r.path for p in PROTOCOLS if p.prefixes for r in p.routes()]
    assert sorted(grouped) == sorted(vendors) and len(set(grouped)) == len(grouped)
    assert set(grouped) <= {r.path for r in flat_routes()}
    # Each group's prefixes cover its routes.
    for group in all_routes():
        if isinstance(group, PrefixedRoutes):
            assert all(route.path.startswith(group.prefixes) for route in group.routes)
