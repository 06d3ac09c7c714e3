"""The path-table router answers exactly as Starlette's ordered scan would, only without the scan."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from persona_server.api.routing import PathTableRouter


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


def test_same_answers_as_starlette() -> None:
    plain = Starlette(routes=ROUTES)
    fast = Starlette(routes=ROUTES)
    fast.router = PathTableRouter(fast.router.routes)
    requests = [("GET", "/things/special"), ("POST", "/things/special"), ("GET", "/things/x"), ("GET", "/"),
                ("POST", "/"), ("POST", "/only-get"), ("GET", "/missing"), ("DELETE", "/")]
    with TestClient(plain) as a, TestClient(fast) as b:
        for method, path in requests:
            expected, got = a.request(method, path), b.request(method, path)
            assert (got.status_code, got.text) == (expected.status_code, expected.text), (method, path)
    # A path an earlier route with parameters could claim keeps the scan; the others are in the table.
    assert set(fast.router._by_path) == {"/", "/only-get"}
