"""A loopback HTTP server that replays recorded API responses, for testing the online solvers offline.

Routes match by path plus (a subset of) the decoded query parameters; the newest matching route wins, so a
test can override a default. A reply can be delayed, can hang (never answer until the server stops), or be
any HTTP status. Every request received is recorded (path, raw query, decoded parameters, headers), so tests
can assert what a solver actually sent.

Recorded exchanges live in JSON files: {"request": {"path": ..., "query": {...}}, "response": {"status": ...,
"headers": {...}, "json": ... | "text": ...}}. Their texts are our own; only the shapes are the real APIs'.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

RECORDED = Path(__file__).resolve().parent / "online" / "fixtures"


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False

    def body(self) -> tuple[bytes, str]:
        if self.text is not None:
            return self.text.encode("utf-8"), "text/plain; charset=utf-8"
        if self.json is not None:
            return json.dumps(self.json).encode("utf-8"), "application/json; charset=utf-8"
        return b"", "text/plain; charset=utf-8"


@dataclass
class Route:
    path: str
    query: dict[str, str]
    reply: Reply

    def matches(self, path: str, params: dict[str, list[str]]) -> bool:
        return path == self.path and all(params.get(k) == [v] for k, v in self.query.items())


@dataclass
class Received:
    method: str
    path: str
    raw_query: str
    params: dict[str, list[str]]
    headers: dict[str, str]

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None


class ReplayServer:
    """Start with `with ReplayServer() as server:` (or start()/stop()); `server.url` is its root."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        # A short poll interval: stop() waits for the serving loop to notice.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="replay-server", daemon=True
        )

    # -- configuration ----------------------------------------------------------------------------------------

    def add(self, path: str, reply: Reply | None = None, query: dict[str, str] | None = None, **kwargs: Any) -> None:
        """Answer GETs of `path` whose parameters include `query` with `reply` (or Reply(**kwargs))."""
        with self._lock:
            self.routes.append(Route(path, dict(query or {}), reply or Reply(**kwargs)))

    def add_recorded(self, file: str | Path, prefix: str = "", **overrides: Any) -> None:
        """Replay a recorded exchange (a path, or a file name in tests/online/fixtures); `prefix` goes before
        its path (e.g. "/en" for a base_url ending in "/{lang}"); `overrides` change the reply (delay=...)."""
        path = Path(file)
        data = json.loads((path if path.is_absolute() else RECORDED / path).read_text(encoding="utf-8"))
        request, response = data["request"], data["response"]
        reply = Reply(
            status=response.get("status", 200),
            json=response.get("json"),
            text=response.get("text"),
            headers=response.get("headers", {}),
        )
        for key, value in overrides.items():
            setattr(reply, key, value)
        self.add(prefix + request["path"], reply, query=request.get("query"))

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- lifecycle --------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ReplayServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging replies
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ----------------------------------------------------------------------------------------------

    def _route(self, path: str, params: dict[str, list[str]]) -> Reply | None:
        with self._lock:
            for route in reversed(self.routes):
                if route.matches(path, params):
                    return route.reply
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = parse_qs(parts.query, keep_blank_values=True)
                with server._lock:
                    server.requests.append(Received(
                        "GET", parts.path, parts.query, params, {k.lower(): v for k, v in self.headers.items()}
                    ))
                reply = server._route(parts.path, params)
                if reply is None:
                    reply = Reply(status=404, json={"error": f"no recorded reply for {parts.path}"})
                if reply.hang:
                    server._stopping.wait(timeout=120)
                    self.close_connection = True
                    return
                if reply.delay:
                    deadline = time.monotonic() + reply.delay
                    while time.monotonic() < deadline and not server._stopping.is_set():
                        time.sleep(0.01)
                body, content_type = reply.body()
                self.send_response(reply.status)
                headers = {"Content-Type": content_type, **reply.headers, "Content-Length": str(len(body))}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:  # the client gave up first
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests read `requests` instead

        return Handler
