"""The chat page and the API docs: static files shipped in `persona_server/web/`, served with ETags and a strict
Content-Security-Policy, and the choice of what `GET /` answers by the client's `Accept` header.

The page at `/` loads its assets from `/ui/...` by relative URLs (so it also works behind a proxy's path prefix);
`/docs` is Swagger UI (vendored in `web/docs/`) over `/openapi.json`. Neither holds anything secret, so both are
served without the API key; the page asks for the key when the API refuses it.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from persona_server.api.errors import APIError

ROOT = resources.files("persona_server") / "web"
PAGE = "index.html"
DOCS_PAGE = "docs/index.html"
ASSET_PREFIX = "/ui/"

# No inline script or style anywhere, nothing from another origin; the page talks only to this server.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
          ".txt": "text/plain; charset=utf-8", ".md": "text/plain; charset=utf-8", "": "text/plain; charset=utf-8"}
_COMPRESSIBLE = (".html", ".css", ".js", ".svg", ".txt", ".md", "")
RUNNING = "persona-server is running"


def _walk(folder: resources.abc.Traversable, prefix: str = "") -> list[str]:
    names: list[str] = []
    for entry in folder.iterdir():
        if entry.is_dir():
            if entry.name != "__pycache__":
                names += _walk(entry, f"{prefix}{entry.name}/")
        elif not entry.name.endswith((".py", ".pyc")):
            names.append(prefix + entry.name)
    return sorted(names)


# The set of files is fixed at install time: listing it once bounds what `/ui/...` can ever serve.
FILES: frozenset[str] = frozenset(_walk(ROOT)) if ROOT.is_dir() else frozenset()


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # None: not worth compressing
    etag: str
    media_type: str


def _read(name: str) -> Asset:
    body = ROOT.joinpath(*PurePosixPath(name).parts).read_bytes()
    suffix = PurePosixPath(name).suffix
    packed = gzip.compress(body, 6, mtime=0) if suffix in _COMPRESSIBLE and len(body) > 1024 else None
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    smaller = packed if packed is not None and len(packed) < len(body) else None
    return Asset(body, smaller, etag, _TYPES.get(suffix, "application/octet-stream"))


_LOADED: dict[str, Asset] = {}  # bounded by FILES


async def asset(name: str) -> Asset:
    """A file's bytes, read once (they never change while the server runs). Reading and compressing run in a
    worker thread: gzip takes ~0.3 s over Swagger UI's bundle, which must not stall the event loop."""
    item = _LOADED.get(name)
    if item is None:
        item = _LOADED[name] = await anyio.to_thread.run_sync(_read, name)
    return item


async def serve(request: Request, name: str) -> Response:
    """`name` from the shipped files, revalidated by ETag (`no-cache`: a new version shows at once)."""
    if name not in FILES:
        raise APIError(404, f"Invalid URL ({request.method} {request.url.path})")
    item = await asset(name)
    headers = {"ETag": item.etag, "Cache-Control": "no-cache", "Content-Security-Policy": CSP,
               "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Vary": "Accept-Encoding"}
    if item.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if item.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        return Response(item.gzipped, media_type=item.media_type, headers={**headers, "Content-Encoding": "gzip"})
    return Response(item.body, media_type=item.media_type, headers=headers)


# -- GET /: which answer a client wants ------------------------------------------------------------------------

_KINDS = {"application/json": "json", "text/html": "html", "application/xhtml+xml": "html", "text/plain": "text"}
# Between equally wanted kinds: what `GET /` answered before there was a page, then text (`text/*`).
_ORDER = {"json": 2, "text": 1, "html": 0}


def preferred(accept: str | None) -> str:
    """`json`, `html` or `text` for an `Accept` header: the highest q wins, a type named outright beats one
    reached by a wildcard (browsers end with `*/*;q=0.8`), ties go to JSON. No header, or `*/*`: JSON."""
    if not accept:
        return "json"
    ranges: dict[str, float] = {}
    for part in accept.split(",")[:32]:  # bounded: the header is the client's
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            if param[:2].lower() == "q=":
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        ranges.setdefault(media.lower(), q)
    scores = dict.fromkeys(_ORDER, (0.0, 0))
    for media_type, kind in _KINDS.items():
        # The most specific range that matches a type sets its q (RFC 9110, 12.5.1).
        for specificity, name in ((2, media_type), (1, media_type.split("/")[0] + "/*"), (0, "*/*")):
            if name in ranges:
                scores[kind] = max(scores[kind], (ranges[name], specificity))
                break
    kind = max(scores, key=lambda k: (*scores[k], _ORDER[k]))
    return kind if scores[kind][0] > 0 else "json"


def wants_page(scope_headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request for `/` asks for the page (for the API-key check, which has no Request yet)."""
    accept = next((v for k, v in scope_headers if k == b"accept"), b"")
    return preferred(accept.decode("latin-1")) == "html"


async def page(request: Request) -> Response:
    return await serve(request, PAGE)


def running(request: Request) -> Response:
    """What Ollama answers at `/` ("Ollama is running"), for clients that ask for text."""
    return Response(RUNNING, media_type="text/plain; charset=utf-8")


# -- routes --------------------------------------------------------------------------------------------------


async def ui_file(request: Request) -> Response:
    """A file of the chat page or of the API docs"""
    return await serve(request, request.path_params["name"])


async def docs(request: Request) -> Response:
    """Interactive API documentation (Swagger UI over /openapi.json)"""
    return await serve(request, DOCS_PAGE)


def routes() -> list[Route]:
    return [
        Route("/docs", docs, methods=["GET"]),
        Route(ASSET_PREFIX + "{name:path}", ui_file, methods=["GET"]),
    ]


# Served without the API key: the page and its files hold nothing secret, and the page must load to ask for it.
OPEN_PATHS: frozenset[str] = frozenset({"/docs", *(ASSET_PREFIX + name for name in FILES)})
