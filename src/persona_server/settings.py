"""Server settings: what the CLI flags (or a process manager's environment) configure."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from persona_server.limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_KEEP_ALIVE,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_MAX_HEADER,
)

DEFAULT_PORT = 8337


@dataclass(slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    persona_files: list[str] = field(default_factory=list)
    persona_dirs: list[str] = field(default_factory=list)
    default_persona: str | None = None
    # Reload `persona_dirs` when their files are added, changed or deleted.
    watch: bool = True
    # With an API key every API route requires `Authorization: Bearer KEY`; without one, any key is accepted
    # (clients refuse to send a request with no key at all, so an open server must ignore it).
    api_key: str | None = None
    strict_models: bool = False
    # Browser origins allowed besides the local ones (see api/browser.py); "*" allows every origin.
    cors_origins: list[str] = field(default_factory=list)
    # Host names admitted besides loopback ones while bound to loopback (behind a reverse proxy).
    allowed_hosts: list[str] = field(default_factory=list)
    lang: str = "en"
    units: Literal["metric", "imperial"] = "metric"
    workers: int = 1
    log_level: str = "info"
    access_log: bool = False
    # `text` for people, `json` (one object per line) for log shippers.
    log_format: Literal["text", "json"] = "text"
    # Seconds of silence before an SSE comment ping keeps a slow stream's connection alive.
    ping_interval: float = 15.0
    # Worker threads shared by the blocking solvers of all personas.
    max_threads: int = 8
    # Bounds on requests and clients (see persona_server.limits; defaults there).
    max_body_size: int = DEFAULT_MAX_BODY
    max_header_size: int = DEFAULT_MAX_HEADER
    max_concurrent: int | None = DEFAULT_MAX_CONCURRENT  # None or 0: no limit
    rate_limit: str | None = None  # "N/second|minute|hour" per client
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE  # an idle connection's life between requests
    # uvicorn's HTTP parser: "auto" (httptools when installed), "httptools" or "h11".
    http: Literal["auto", "httptools", "h11"] = "auto"
    # Also serve OpenVoiceOS's personas: opm.plugin.persona entry points and ~/.config/ovos_persona/.
    ovos_personas: bool = False
    # Seconds a request may take in all; its work is cancelled then (0: no limit).
    request_timeout: float = 300.0
    # Seconds in-flight answers get to finish after SIGTERM before they are cancelled.
    graceful_timeout: float = 10.0
    # Serve each persona as an A2A agent under /a2a (api/a2a.py); agent cards name endpoints under `a2a_url`
    # (the server's public base URL), else under the host each request asked for.
    a2a: bool = False
    a2a_url: str | None = None
    # Where per-user state lives (persona_server.state): None in process, or redis://HOST:PORT/DB shared by
    # every instance; key names start with the prefix; each Redis operation gets at most the timeout (seconds).
    state: str | None = None
    state_prefix: str = "persona-server"
    state_timeout: float = 0.25
    # Serve the personas as MCP tools at /mcp (streamable HTTP; api/mcp_server.py).
    mcp: bool = False
    # Files and vector stores (persona_server.vectorstores): where they are kept (None: datadir.data_root()),
    # the Chroma server holding the vectors (None: sqlite-vec in the data directory), the largest upload.
    data_dir: str | None = None
    vector_db: str | None = None
    max_upload_bytes: int = 32 * 1024 * 1024

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        return cls(**data)

    @property
    def page_url(self) -> str:
        """Where a browser on this machine finds the server (the chat page's base URL): an address that binds
        every interface is reached at loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host in ("localhost", ""):
            return self.host == "localhost"
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
