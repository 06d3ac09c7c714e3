"""What the web routes answer to clients that are not browsers: `GET /` by `Accept`, the page's files (ETags,
types, gzip, a strict CSP, nothing outside the shipped folder), what is open when the server has a key,
`/v1/personas`, and the same-origin rule of the browser guard. The page in a real browser:
tests/e2e/test_chat_page.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ServerProcess, persona_args, start_server_process

KEY = "sk-web-routes-key"
SECRET = "sk-upstream-secret-456"
OPENAI = "ovos-solver-openai-plugin"
FAILURE = "ovos-solver-failure-plugin"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
PLAIN = {"name": "Plain", "solvers": [FAILURE], FAILURE: {"answers": ["A plain answer."]}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("web-routes")
    args = persona_args(root, {
        # Never called: its config is only there to be kept out of /v1/personas.
        "Llm.json": {"name": "Llm", "description": "An LLM somewhere.", "solvers": [OPENAI, FAILURE],
                     OPENAI: {"api_url": "http://10.9.8.7:1/v1", "key": SECRET, "model": "m"}},
        "Plain.json": PLAIN,
        "Remembers.json": {**PLAIN, "name": "Remembers", "memory": 3},
    })
    proc = start_server_process(*args, "--allowed-host", "chat.test", log_path=root / "server.log")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("web-routes-key")
    args = persona_args(root, {"Plain.json": PLAIN})
    proc = start_server_process(*args, "--api-key", KEY, log_path=root / "server.log")
    yield proc
    proc.stop()


def test_root_answers_by_accept_header(server: ServerProcess) -> None:
    base = server.base_url
    # The start-up line that says where the server listens names the page and the docs.
    assert f"chat page: {base}/ - API docs: {base}/docs" in server.log()
    page = httpx.get(base + "/", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="ui/app.js">' in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert "Accept" in page.headers["vary"]
    again = httpx.get(base + "/", headers={"Accept": BROWSER_ACCEPT, "If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    text = httpx.get(base + "/", headers={"Accept": "text/plain"})
    assert text.status_code == 200 and text.text == "persona-server is running"
    assert text.headers["content-type"].startswith("text/plain")
    # What curl, httpx, the ollama client (application/json) and axios send: the JSON index, as before.
    with httpx.Client() as client:
        for accept in (None, "*/*", "application/json", "application/json, text/plain, */*"):
            request = client.build_request("GET", base + "/")
            del request.headers["accept"]  # httpx sends `*/*` unless told otherwise
            if accept is not None:
                request.headers["accept"] = accept
            response = client.send(request)
            assert response.status_code == 200, accept
            assert response.json()["name"] == "persona-server", accept
            assert "/docs" in response.json()["endpoints"]
    for accept in (BROWSER_ACCEPT, "text/plain", "*/*"):
        head = httpx.head(base + "/", headers={"Accept": accept})
        assert head.status_code == 200 and head.content == b"", accept


def test_the_page_and_docs_are_open_with_a_key_and_nothing_else_is(keyed: ServerProcess) -> None:
    base = keyed.base_url
    assert httpx.get(base + "/", headers={"Accept": BROWSER_ACCEPT}).status_code == 200
    for path in ("/docs", "/ui/app.js", "/ui/chat.css", "/ui/docs/swagger-ui-bundle.js", "/openapi.json"):
        assert httpx.get(base + path).status_code == 200, path
    assert httpx.get(base + "/").status_code == 401  # the JSON index lists the models: it needs the key
    assert httpx.get(base + "/", headers={"Accept": "text/plain"}).status_code == 401
    assert httpx.get(base + "/v1/personas").status_code == 401
    # TGI's POST / is not the page, whatever the client says it accepts.
    post = httpx.post(base + "/", json={"inputs": "hi"}, headers={"Accept": BROWSER_ACCEPT})
    assert post.status_code == 401
    assert httpx.get(base + "/ui/nothing.js").status_code == 401  # not a file of the page: no free pass


def test_assets_have_etags_types_and_gzip(server: ServerProcess) -> None:
    script = httpx.get(server.base_url + "/ui/app.js", headers={"Accept-Encoding": "identity"})
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["x-content-type-options"] == "nosniff"
    assert script.headers["cache-control"] == "no-cache"
    packed = httpx.get(server.base_url + "/ui/docs/swagger-ui-bundle.js", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip" and int(packed.headers["content-length"]) < 1_000_000
    assert packed.text.startswith("/*! For license information")  # httpx decoded it
    fresh = httpx.get(server.base_url + "/ui/app.js", headers={"If-None-Match": script.headers["etag"]})
    assert fresh.status_code == 304
    # Only the shipped files: no way out of the folder, and errors in OpenAI's format.
    for path in ("/ui/%2e%2e/app.py", "/ui/..%2fapp.py", "/ui/nothing.js", "/ui/", "/ui/docs"):
        missing = httpx.get(server.base_url + path)
        assert missing.status_code == 404, path
        assert set(missing.json()["error"]) == {"message", "type", "param", "code"}


def test_personas_route_shows_description_and_chain_but_no_config(server: ServerProcess) -> None:
    response = httpx.get(server.base_url + "/v1/personas")
    assert response.status_code == 200
    personas = {p["id"]: p for p in response.json()["data"]}
    assert list(personas) == ["Llm", "Plain", "Remembers"]
    assert personas["Llm"]["description"] == "An LLM somewhere."
    assert personas["Llm"]["default"] and not personas["Plain"]["default"]
    assert [s["name"] for s in personas["Llm"]["chain"]] == [OPENAI, FAILURE]
    assert all(s["state"] == "ready" for p in personas.values() for s in p["chain"])
    assert personas["Remembers"]["memory"] and not personas["Llm"]["memory"]
    assert SECRET not in response.text and "10.9.8.7" not in response.text  # no solver config
    assert ".json" not in response.text  # nor the files they came from


def test_same_origin_requests_pass_the_browser_guard(server: ServerProcess) -> None:
    base, port = server.base_url, server.port
    body = {"model": "Plain", "messages": [{"role": "user", "content": "hi"}]}
    # The page served under an admitted name calls back to that name.
    same = httpx.post(base + "/v1/chat/completions", json=body,
                      headers={"Host": f"chat.test:{port}", "Origin": f"http://chat.test:{port}"})
    assert same.status_code == 200, same.text
    for origin in (f"http://evil.test:{port}", f"http://chat.test:{port + 1}", f"ftp://chat.test:{port}"):
        other = httpx.post(base + "/v1/chat/completions", json=body,
                           headers={"Host": f"chat.test:{port}", "Origin": origin})
        assert other.status_code == 403, origin
