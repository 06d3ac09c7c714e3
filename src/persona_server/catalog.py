"""The personas a server offers, looked up by the `model` field of a request."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import anyio
import httpx

from persona_server import __version__
from persona_server.persona import Persona, PersonaError, PersonaSpec, default_persona_spec, load_persona_file

log = logging.getLogger(__name__)

USER_AGENT = f"persona-server/{__version__} (+https://github.com/persona-server/persona-server)"


def load_specs(files: Iterable[str | Path] = (), dirs: Iterable[str | Path] = ()) -> list[PersonaSpec]:
    """Every persona named on the command line; raises PersonaError on the first broken file."""
    specs = [load_persona_file(path) for path in files]
    for directory in dirs:
        path = Path(directory)
        if not path.is_dir():
            raise PersonaError(str(path), "not a directory")
        specs.extend(load_persona_file(file) for file in sorted(path.glob("*.json")))
    return specs


def model_key(name: str) -> str:
    """Model names match case-insensitively, with or without Ollama's ':latest' tag."""
    key = name.strip().lower()
    return key.removesuffix(":latest")


class Catalog:
    """Personas by name, the default one, and the resources they share (HTTP client, thread pool)."""

    def __init__(self, specs: list[PersonaSpec], *, default: str | None = None, max_threads: int = 8) -> None:
        if not specs:
            specs = [default_persona_spec()]
        self._http: httpx.AsyncClient | None = None
        self._limiter = anyio.CapacityLimiter(max_threads)
        self.personas: dict[str, Persona] = {}
        for spec in specs:
            key = model_key(spec.name)
            if key in self.personas:
                log.warning("two personas are named %r; serving the one from %s", spec.name, spec.source)
            self.personas[key] = Persona(spec, http=self.http, thread_limiter=self._limiter)
        default_key = model_key(default) if default else model_key(specs[0].name)
        if default_key not in self.personas:
            raise PersonaError(default or "", f"default persona {default!r} is not among the loaded personas")
        self.default = self.personas[default_key]

    def http(self) -> httpx.AsyncClient:
        """The process-wide HTTP client, created on first use inside the running event loop."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(10.0, connect=3.0),
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                headers={"User-Agent": USER_AGENT},
                follow_redirects=True,
            )
        return self._http

    def get(self, model: str | None) -> Persona | None:
        """The persona a `model` names; the default for ""/None; None when the name is unknown."""
        if not model or not model.strip():
            return self.default
        return self.personas.get(model_key(model))

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.personas.values())

    @property
    def ready(self) -> bool:
        return all(persona.ready for persona in self.personas.values())

    async def start(self) -> None:
        for persona in self.personas.values():
            await persona.start()

    async def wait_ready(self) -> None:
        for persona in self.personas.values():
            await persona.wait_ready()

    async def close(self) -> None:
        for persona in self.personas.values():
            await persona.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
