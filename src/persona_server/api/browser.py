"""What browsers may do: CORS for the pages the user trusts, and refusals for the pages they do not.

A local model server is reachable by every page the user visits. Browser clients (extensions, webviews, chat UIs
on localhost) need CORS; hostile pages must be stopped before any solver spends a key:

- A request with an `Origin` that is not allowed gets 403 in its route's error format. Requests without `Origin`
  (every non-browser client) are unaffected, except a cross-site subresource request (`Sec-Fetch-Site:
  cross-site`, not a top-level navigation), which browsers send without `Origin`.
- Allowed by default, as Ollama does: http(s) on `localhost`, `127.0.0.1`, `[::1]` and `0.0.0.0` at any port, and
  the app schemes of desktop shells and extensions. `--cors-origin` adds origins (`*` allows every origin; a `*`
  inside a pattern matches any text, e.g. `https://*.example.com`).
- While bound to loopback, a request whose `Host` is not a loopback name or address is refused (DNS rebinding: a
  page whose name resolves to 127.0.0.1 would otherwise read the replies). `--allowed-host` admits a name.
- Preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) are answered here, with 204 and no key.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable

from starlette.types import Send

# Ollama's defaults (envconfig.AllowedOrigins), which browser clients of local models already rely on.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "0.0.0.0")
APP_SCHEMES = ("app", "file", "tauri", "vscode-webview", "vscode-file", "chrome-extension", "moz-extension")
# Headers a browser client may send: SDKs add their own (`x-stainless-*`, `anthropic-version`, ...), so whatever
# the preflight asks for is allowed; this list is what a preflight that asks for nothing is told.
DEFAULT_ALLOWED_HEADERS = "authorization, content-type, x-api-key, x-request-id, anthropic-version"
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS, HEAD"
# Response headers a page's script may read (the rest are hidden by the browser).
EXPOSED_HEADERS = b"x-request-id, retry-after, www-authenticate"
PREFLIGHT_MAX_AGE = b"600"
# Decisions are cached per distinct Origin/Host value; bounded, since both are client-chosen.
_CACHE_SIZE = 256
_ORIGIN = re.compile(r"^([a-z][a-z0-9+.-]*)://(\[[0-9a-f:.]+\]|[^/:\[\]]*)(?::(\d{1,5}))?/?$")


class OriginPolicy:
    """Which `Origin` values may use the server, from the defaults and the configured extra patterns."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        patterns = [p.strip().lower().rstrip("/") for p in extra if p.strip()]
        self.allow_all = "*" in patterns
        self._exact = frozenset(p for p in patterns if "*" not in p)
        self._globs = [re.compile(fnmatch.translate(p)) for p in patterns if "*" in p and p != "*"]
        self._cache: dict[bytes, bool] = {}

    def allows(self, origin: bytes) -> bool:
        decision = self._cache.get(origin)
        if decision is None:
            decision = self._decide(origin.decode("latin-1").lower())
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[origin] = decision
        return decision

    def _decide(self, origin: str) -> bool:
        if self.allow_all or origin in self._exact or any(g.match(origin) for g in self._globs):
            return True
        match = _ORIGIN.match(origin)
        if match is None:
            return False  # includes "null": sandboxed frames of any site send it
        scheme, host = match.group(1), match.group(2)
        if scheme in ("http", "https"):
            return host in LOCAL_HOSTS
        return scheme in APP_SCHEMES


class HostPolicy:
    """Which `Host` values a loopback-bound server answers: loopback names and addresses, plus configured names."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._extra = frozenset(h.strip().lower() for h in extra if h.strip())
        self._cache: dict[bytes, bool] = {}

    def allows(self, host: bytes) -> bool:
        decision = self._cache.get(host)
        if decision is None:
            decision = self._decide(host.decode("latin-1").lower())
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[host] = decision
        return decision

    def _decide(self, host: str) -> bool:
        name = _strip_port(host).rstrip(".")  # "localhost." is the same name, written absolute
        if name in self._extra or host in self._extra:
            return True
        if name == "localhost" or name.endswith(".localhost") or name == "0.0.0.0":
            return True  # *.localhost never goes to DNS (RFC 6761); 0.0.0.0 is no name to rebind
        try:
            return ipaddress.ip_address(name.strip("[]")).is_loopback
        except ValueError:
            return False


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class BrowserGuard:
    """Applies the policies above to one request (called by the front door, api/front_door.py); requests without
    `Origin` pay one scan of their headers."""

    def __init__(self, origins: OriginPolicy, hosts: HostPolicy | None) -> None:
        self.origins = origins
        self.hosts = hosts  # None: not bound to loopback, no Host check

    def refusal(self, headers: dict[bytes, bytes], method: str) -> str | None:
        """Why this request is refused (the 403's message), or None."""
        host = headers.get(b"host")
        if self.hosts is not None and host is not None and not self.hosts.allows(host):
            return ("The Host header names no address of this server "
                    "(start it with --allowed-host NAME to serve that name).")
        origin = headers.get(b"origin")
        if origin is None:
            if headers.get(b"sec-fetch-site") == b"cross-site" and not (
                    headers.get(b"sec-fetch-mode") == b"navigate" and method == "GET"):
                return "Cross-site requests are not allowed."
            return None
        if not self.origins.allows(origin):
            return ("This origin is not allowed to use the server (start it with --cors-origin ORIGIN to "
                    "allow it).")
        return None


def cors_headers(origin: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"access-control-allow-origin", origin),
        (b"vary", b"Origin"),
        (b"access-control-expose-headers", EXPOSED_HEADERS),
    ]


def is_preflight(headers: dict[bytes, bytes], method: str) -> bool:
    return method == "OPTIONS" and b"access-control-request-method" in headers


async def preflight(request: dict[bytes, bytes], send: Send) -> None:
    """Answer a preflight of an allowed origin: 204, no key needed (`send` adds the `cors_headers`, as to every
    response to an allowed origin)."""
    requested = request.get(b"access-control-request-headers")
    headers = [
        (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
        (b"access-control-allow-headers", requested or DEFAULT_ALLOWED_HEADERS.encode()),
        (b"access-control-max-age", PREFLIGHT_MAX_AGE),
    ]
    # Chrome asks before a public page may reach a private address; allowed origins may.
    if request.get(b"access-control-request-private-network") == b"true":
        headers.append((b"access-control-allow-private-network", b"true"))
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
