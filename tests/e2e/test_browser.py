"""Browsers: CORS for trusted pages, 403 for hostile ones and for rebinding Host names.

Real server processes whose persona is an LLM behind the scripted upstream, so "never reaches a solver" is checked
where it matters: the upstream never saw the request. The raw-HTTP tests pin the headers; the Chromium tests show
that a real browser page on another loopback port can list models and stream an answer, and that a page from
another origin cannot make the server work.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import ServerProcess, free_port, require_binary, start_server_process
from tests.llm.upstream import Reply, Upstream

KEY = "sk-browser-test-key"
TOKENS = ["Streaming", " answers", " reach", " the", " page", "."]
ALLOWED = [
    "http://localhost:5173", "https://localhost", "http://127.0.0.1:3000", "http://[::1]:8080", "http://0.0.0.0:9",
    "app://obsidian.md", "file://", "tauri://localhost", "vscode-webview://1a2b3c", "chrome-extension://abcdefgh",
]
REFUSED = ["https://evil.example", "null", "http://localhost.evil.example", "http://127.0.0.2:8000",
           "https://app.example.com.evil.example"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        up.default = Reply(tokens=TOKENS, delay=0.05)
        yield up


def _start(root: Path, upstream: Upstream, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
    persona = root / "llm.json"
    persona.write_bytes(orjson.dumps({"name": "Llm", "solvers": ["ovos-solver-openai-plugin"],
                                      "ovos-solver-openai-plugin": {"api_url": upstream.base_url, "key": "sk-up",
                                                                    "model": "scripted"}}))
    return start_server_process("--persona", str(persona), *args, log_path=root / f"server{len(args)}.log", env=env)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[ServerProcess]:
    proc = _start(tmp_path_factory.mktemp("browser-open"), upstream)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[ServerProcess]:
    proc = _start(tmp_path_factory.mktemp("browser-key"), upstream, "--api-key", KEY,
                  "--cors-origin", "https://app.example.com", "--allowed-host", "proxy.internal",
                  env={"PERSONA_SERVER_CORS_ORIGINS": "https://*.trusted.test, https://other.example"})
    yield proc
    proc.stop()


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "Llm", "messages": [{"role": "user", "content": "hi"}], **extra}


# -- raw HTTP -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("proc", ["server", "keyed"])
def test_preflight_is_answered_without_a_key(proc: str, request: pytest.FixtureRequest) -> None:
    base = request.getfixturevalue(proc).base_url
    asked = "authorization, content-type, x-api-key, x-stainless-os, anthropic-version"
    for path in ("/v1/chat/completions", "/api/chat", "/chat/completions", "/v1/models"):
        response = httpx.options(base + path, headers={
            "Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked})
        assert response.status_code == 204, (path, response.text)
        assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert "Origin" in response.headers["vary"]
        assert "POST" in response.headers["access-control-allow-methods"]
        allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
        assert allowed >= {"authorization", "content-type", "x-api-key", "x-stainless-os", "anthropic-version"}


def test_local_and_app_origins_are_allowed_by_default(server: ServerProcess) -> None:
    for origin in ALLOWED:
        response = httpx.get(server.base_url + "/v1/models", headers={"Origin": origin})
        assert response.status_code == 200, origin
        assert response.headers["access-control-allow-origin"] == origin
        assert "Origin" in response.headers["vary"]


def test_configured_origins_are_allowed_too(keyed: ServerProcess) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    for origin in ("https://app.example.com", "https://chat.trusted.test", "https://other.example"):
        response = httpx.get(keyed.base_url + "/v1/models", headers={"Origin": origin, **auth})
        assert response.status_code == 200, origin
        assert response.headers["access-control-allow-origin"] == origin
    # Errors carry the CORS headers too, so a page can read why it was refused.
    response = httpx.get(keyed.base_url + "/v1/models", headers={"Origin": "https://app.example.com"})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"


def test_refused_origins_get_403_in_the_route_format_and_no_solver_runs(server: ServerProcess,
                                                                        upstream: Upstream) -> None:
    before = len(upstream.requests)
    for origin in REFUSED:
        response = httpx.post(server.base_url + "/v1/chat/completions", json=chat_body(),
                              headers={"Origin": origin})
        assert response.status_code == 403, origin
        assert response.json()["error"]["type"] == "permission_error"
        assert "access-control-allow-origin" not in response.headers
        # The classic cross-site attack: a text/plain form POST, which browsers send without a preflight.
        response = httpx.post(server.base_url + "/api/chat", content=orjson.dumps(chat_body(stream=False)),
                              headers={"Origin": origin, "Content-Type": "text/plain"})
        assert response.status_code == 403
        assert isinstance(response.json()["error"], str)
        preflight = httpx.options(server.base_url + "/v1/chat/completions", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 403
    # A cross-site subresource request comes without Origin; browsers mark it with Sec-Fetch-Site.
    response = httpx.post(server.base_url + "/api/generate", json={"model": "Llm", "prompt": "hi"},
                          headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"})
    assert response.status_code == 403
    assert len(upstream.requests) == before
    # Clients that are not browsers send no Origin and are unaffected.
    response = httpx.post(server.base_url + "/v1/chat/completions", json=chat_body())
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "".join(TOKENS)
    assert len(upstream.requests) == before + 1


def test_a_rebinding_host_is_refused(server: ServerProcess, keyed: ServerProcess) -> None:
    for host in ("evil.example", f"evil.example:{server.port}", "attacker.test:80", "127.0.0.1.nip.io"):
        response = httpx.get(server.base_url + "/v1/models", headers={"Host": host})
        assert response.status_code == 403, host
        assert "Host" in response.json()["error"]["message"]
        response = httpx.post(server.base_url + "/api/chat", json=chat_body(), headers={"Host": host})
        assert response.status_code == 403 and isinstance(response.json()["error"], str)
    for host in (f"localhost:{server.port}", "127.0.0.1", f"[::1]:{server.port}", "app.localhost", "127.1.2.3:1"):
        assert httpx.get(server.base_url + "/v1/models", headers={"Host": host}).status_code == 200, host
    # --allowed-host admits a name (a reverse proxy in front), on any port.
    auth = {"Authorization": f"Bearer {KEY}"}
    for host in ("proxy.internal", "proxy.internal:443"):
        assert httpx.get(keyed.base_url + "/v1/models", headers={"Host": host, **auth}).status_code == 200
    assert httpx.get(keyed.base_url + "/v1/models", headers={"Host": "evil.example", **auth}).status_code == 403


# -- a real browser -----------------------------------------------------------------------------------------------


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>client page</title><p>A browser client of persona-server.</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_port() -> Iterator[int]:
    """A web server on another loopback port, serving the page the browser tests run their scripts in."""
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), _Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = require_binary("chromium", "chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync",
            # Two names for 127.0.0.1: a hostile site, and one whose DNS was rebound to the user's machine.
            "--host-resolver-rules=MAP evil.test 127.0.0.1, MAP rebind.test 127.0.0.1",
        ])
        yield chromium
        chromium.close()


CLIENT_JS = """async ({base, key}) => {
  const headers = {"Content-Type": "application/json"};
  if (key) headers["Authorization"] = "Bearer " + key;
  const models = await fetch(base + "/v1/models", {headers});
  const listed = models.ok ? (await models.json()).data.map(m => m.id) : [];
  const response = await fetch(base + "/v1/chat/completions", {method: "POST", headers, body: JSON.stringify(
    {model: "Llm", stream: true, messages: [{role: "user", content: "hi"}]})});
  let raw = "", reads = 0;
  if (response.body) {
    const reader = response.body.getReader(), decoder = new TextDecoder();
    for (;;) { const {done, value} = await reader.read(); if (done) break; reads++; raw += decoder.decode(value); }
  }
  const content = raw.split("\\n").filter(l => l.startsWith("data: {")).map(l => JSON.parse(l.slice(6)))
    .map(e => (e.choices && e.choices[0] && e.choices[0].delta.content) || "").join("");
  return {modelsStatus: models.status, listed, status: response.status, content, reads,
          done: raw.includes("data: [DONE]")};
}"""

ATTACK_JS = """async ({base}) => {
  const outcome = {};
  try {
    const r = await fetch(base + "/v1/chat/completions", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(
        {model: "Llm", messages: [{role: "user", content: "spend the key"}]})});
    outcome.cors = "read " + r.status;
  } catch (error) { outcome.cors = "blocked"; }
  // No preflight for this one: the browser sends it, the page just cannot read the answer.
  await fetch(base + "/api/chat", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
    body: JSON.stringify({model: "Llm", stream: false, messages: [{role: "user", content: "spend the key"}]})});
  outcome.noCors = "sent";
  return outcome;
}"""


def test_a_page_on_another_loopback_port_lists_models_and_streams(browser: Any, server: ServerProcess,
                                                                   keyed: ServerProcess, page_port: int) -> None:
    page = browser.new_page()
    try:
        page.goto(f"http://127.0.0.1:{page_port}/")
        for proc, key in ((server, None), (keyed, KEY)):
            result = page.evaluate(CLIENT_JS, {"base": proc.base_url, "key": key})
            assert result["modelsStatus"] == 200 and result["listed"] == ["Llm", "all-minilm"], result
            assert result["status"] == 200 and result["content"] == "".join(TOKENS), result
            assert result["done"] and result["reads"] >= 2, result  # it streamed, in several reads
        # Without the key the page is told so, readably.
        result = page.evaluate(CLIENT_JS, {"base": keyed.base_url, "key": None})
        assert result["modelsStatus"] == 401 and result["status"] == 401
    finally:
        page.close()


def test_a_page_from_another_origin_cannot_make_the_server_work(browser: Any, server: ServerProcess,
                                                                 upstream: Upstream, page_port: int) -> None:
    page = browser.new_page()
    try:
        # Control: the same requests from a trusted page reach the upstream (so the browser did send them).
        page.goto(f"http://localhost:{page_port}/")
        before = len(upstream.requests)
        assert page.evaluate(ATTACK_JS, {"base": server.base_url}) == {"cors": "read 200", "noCors": "sent"}
        assert len(upstream.requests) == before + 2
        page.goto(f"http://evil.test:{page_port}/")
        assert page.evaluate(ATTACK_JS, {"base": server.base_url}) == {"cors": "blocked", "noCors": "sent"}
        page.wait_for_timeout(300)
        assert len(upstream.requests) == before + 2  # neither request reached a solver
    finally:
        page.close()


def test_dns_rebinding_is_refused_in_the_browser(browser: Any, server: ServerProcess, upstream: Upstream) -> None:
    page = browser.new_page()
    try:
        # The attacker's name now resolves to 127.0.0.1: the page is same-origin with the server.
        response = page.goto(f"http://rebind.test:{server.port}/v1/models")
        assert response is not None and response.status == 403
        before = len(upstream.requests)
        status = page.evaluate("""async () => (await fetch("/v1/chat/completions", {method: "POST",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({model: "Llm", messages: [{role: "user", content: "hi"}]})})).status""")
        assert status == 403
        assert len(upstream.requests) == before
    finally:
        page.close()
