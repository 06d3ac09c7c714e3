"""The personas a server offers, looked up by the `model` field of a request.

Personas come from `--persona` files (fixed for the life of the process), from `--personas` directories (every
`*.json` in them, watched: adding, editing or deleting a file is picked up without a restart), and from installed
packages through the `persona_server.personas` entry-point group (an entry point loads to a persona dict, a path
to a persona file, or a callable returning either).

A reload never interrupts service: the new version's solvers are started and loaded before it replaces the old
one, and the old one is closed a grace period later, so answers in flight finish. A file that fails to load keeps
its previous version serving; the problem is logged and listed in `problems` (shown by `/status`) until the file
is fixed or deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import anyio
import httpx

from persona_server import USER_AGENT, secrets
from persona_server.persona import (
    Persona,
    PersonaError,
    PersonaSpec,
    default_persona_spec,
    load_persona_file,
    parse_persona,
)
from persona_server.state import InProcessState, State

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "persona_server.personas"


def load_specs(files: Iterable[str | Path] = (), dirs: Iterable[str | Path] = ()) -> list[PersonaSpec]:
    """Every persona named on the command line; raises PersonaError on the first broken file."""
    specs = [load_persona_file(path) for path in files]
    for directory in dirs:
        path = Path(directory)
        if not path.is_dir():
            raise PersonaError(str(path), "not a directory")
        specs.extend(load_persona_file(file) for file in sorted(path.glob("*.json")))
    return specs


def entry_point_specs(group: str = ENTRY_POINT_GROUP) -> tuple[list[PersonaSpec], list[dict[str, str]]]:
    """Personas installed packages provide, and a problem for each one that cannot be used (never fatal)."""
    specs: list[PersonaSpec] = []
    problems: list[dict[str, str]] = []
    for ep in entry_points(group=group):
        source = f"entry point {ep.name} ({ep.value})"
        try:
            value: Any = ep.load()
            if callable(value):
                value = value()
            if isinstance(value, str | os.PathLike):
                specs.append(load_persona_file(value))
            else:
                specs.append(parse_persona(value, source=source, default_name=ep.name))
        except PersonaError as exc:
            problems.append({"file": exc.source, "problem": exc.problem})
        except Exception as exc:
            problems.append({"file": source, "problem": f"cannot load: {type(exc).__name__}: {exc}"})
    for problem in problems:
        log.warning("persona %s: %s", problem["file"], secrets.redact(problem["problem"]))
    return specs, problems


def model_key(name: str) -> str:
    """Model names match case-insensitively, with or without Ollama's ':latest' tag."""
    key = name.strip().lower()
    return key.removesuffix(":latest")


def _file_key(path: str | Path) -> str:
    return os.path.normcase(os.path.abspath(path))


class Catalog:
    """Personas by name, the default one, and the resources they share (HTTP client, thread pool)."""

    # Seconds a replaced persona keeps serving the answers already in flight before it is closed.
    retire_grace: float = 30.0
    # Seconds a reloaded persona may spend loading before it replaces the previous version anyway.
    reload_wait: float = 120.0
    # Milliseconds watchfiles waits for a burst of file events (an editor's write + rename) to settle.
    watch_debounce_ms: int = 200

    def __init__(self, specs: list[PersonaSpec], *, default: str | None = None, max_threads: int = 8,
                 watch_dirs: Iterable[str | Path] = (), plugins: bool = False, ovos_personas: bool = False,
                 state: State | None = None) -> None:
        self._http: httpx.AsyncClient | None = None
        # Where per-user state lives (persona_server.state): in process unless --state names a server.
        self.state = state or InProcessState()
        self._limiter = anyio.CapacityLimiter(max_threads)
        # Files (or entry points) that cannot be served right now, by file key: what /status reports.
        self._problems: dict[str, dict[str, str]] = {}
        self._watch_dirs = [Path(d) for d in watch_dirs]
        watched = {_file_key(d) for d in self._watch_dirs}
        # Files whose persona may be replaced or removed at run time: those directly inside a watched directory.
        self._watched_files: dict[str, str] = {}  # file key -> persona key
        given = list(specs)
        if plugins:
            plugin_specs, problems = entry_point_specs()
            self._problems.update((problem["file"], problem) for problem in problems)
        else:
            plugin_specs = []
        if ovos_personas:
            from persona_server.ovos_personas import ovos_persona_specs

            ovos_specs, problems = ovos_persona_specs()
            plugin_specs = [*plugin_specs, *ovos_specs]
            self._problems.update((problem["file"], problem) for problem in problems)
        if not given:
            given = [default_persona_spec()]
        self.personas: dict[str, Persona] = {}
        for index, spec in enumerate([*given, *plugin_specs]):
            key = model_key(spec.name)
            if key in self.personas:
                log.warning("two personas are named %r; serving the one from %s", spec.name, spec.source)
                # The file that lost no longer owns the name: deleting it must not remove the winner.
                self._watched_files = {f: k for f, k in self._watched_files.items() if k != key}
            self.personas[key] = self._build(spec)
            if index < len(given) and _file_key(Path(spec.source).parent) in watched:
                self._watched_files[_file_key(spec.source)] = key
        # An explicit default is a name; otherwise the default is the first persona, and stays its file's
        # persona through reloads, even one that renames it.
        self._default_name = model_key(default) if default else None
        if self._default_name and self._default_name not in self.personas:
            raise PersonaError(default or "", f"default persona {default!r} is not among the loaded personas")
        self.default = self.personas[self._default_name or model_key(given[0].name)]
        self._watcher: asyncio.Task[None] | None = None
        self._stop_watching = asyncio.Event() if self._watch_dirs else None
        self._retiring: set[asyncio.Task[None]] = set()

    def _build(self, spec: PersonaSpec) -> Persona:
        return Persona(spec, http=self.http, thread_limiter=self._limiter, state=self.state)

    def http(self) -> httpx.AsyncClient:
        """The process-wide HTTP client, created on first use inside the running event loop."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(10.0, connect=3.0),
                # Hundreds of requests may wait on a slow LLM at once: a small pool would queue them.
                limits=httpx.Limits(max_connections=1024, max_keepalive_connections=128),
                headers={"User-Agent": USER_AGENT},
                follow_redirects=True,
            )
        return self._http

    def http_pool(self) -> dict[str, int]:
        """How full the shared connection pool is: requests in flight, and connections open / in use.

        Read from httpcore's pool (not a public httpx API, hence the care): a leak shows here long before the
        pool is full and every network solver stops.
        """
        pool = getattr(getattr(self._http, "_transport", None), "_pool", None)
        if pool is None:
            return {"active": 0, "connections": 0, "in_use": 0, "max_connections": 0}
        connections = list(getattr(pool, "connections", []))
        return {
            "active": len(getattr(pool, "_requests", [])),
            "connections": len(connections),
            "in_use": sum(1 for c in connections if not c.is_idle()),
            "max_connections": getattr(pool, "_max_connections", 0) or 0,
        }

    def get(self, model: str | None) -> Persona | None:
        """The persona a `model` names; the default for ""/None; None when the name is unknown."""
        if not model or not model.strip():
            return self.default
        return self.personas.get(model_key(model))

    def for_model(self, model: str | None, *, strict: bool) -> Persona | None:
        """The persona answering a request for `model`: unknown names get the default persona, unless models
        are strict (then None). The one rule every protocol follows."""
        persona = self.get(model)
        if persona is None and not strict:
            return self.default
        return persona

    def __iter__(self) -> Iterator[Persona]:
        # A snapshot: a reload may replace the dict while a caller iterates.
        return iter(list(self.personas.values()))

    @property
    def ready(self) -> bool:
        return all(persona.ready for persona in list(self.personas.values()))

    async def start(self) -> None:
        await self.state.start()
        for persona in list(self.personas.values()):
            await persona.start()
        if self._watch_dirs and self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="watch persona directories")

    async def wait_ready(self) -> None:
        for persona in list(self.personas.values()):
            await persona.wait_ready()

    async def close(self) -> None:
        if self._watcher is not None:
            assert self._stop_watching is not None
            self._stop_watching.set()
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watcher
            self._watcher = None
        for task in list(self._retiring):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for persona in list(self.personas.values()):
            await persona.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self.state.close()

    # -- watching directories -------------------------------------------------------------------------------

    async def _watch(self) -> None:
        import watchfiles

        dirs = [str(d) for d in self._watch_dirs if d.is_dir()]
        if not dirs:
            return
        log.info("watching %s for persona changes", ", ".join(dirs))
        # watchfiles logs every batch of events at INFO; our own line per reloaded file says more.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        watched = {_file_key(d) for d in dirs}
        try:
            async for changes in watchfiles.awatch(*dirs, stop_event=self._stop_watching,
                                                   debounce=self.watch_debounce_ms, recursive=False):
                paths = sorted({path for _, path in changes
                                if path.endswith(".json") and _file_key(Path(path).parent) in watched})
                for path in paths:
                    try:
                        await self.reload_file(path)
                    except Exception:
                        log.exception("reloading persona file %s", path)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("watching persona directories stopped")

    async def reload_file(self, path: str | Path) -> None:
        """Bring the persona of one watched file up to date with the file (added, changed or deleted)."""
        file_key = _file_key(path)
        old_key = self._watched_files.get(file_key)
        try:
            spec = await asyncio.to_thread(load_persona_file, path)
        except PersonaError as exc:
            if exc.problem != "no such file":
                self._problem(file_key, str(path), exc.problem)
                return
            self._clear_problem(file_key)
            if old_key is not None:
                self._remove(file_key, old_key)
            return
        new_key = model_key(spec.name)
        if new_key != old_key and new_key in self.personas:
            owner = self.personas[new_key].spec.source
            self._problem(file_key, str(path), f"the name {spec.name!r} is already served (from {owner})")
            return
        persona = self._build(spec)
        # Start the new version, and let it load, before it takes any request. A load that takes longer than
        # `reload_wait` is finished in service: the chain waits for a loading solver within its timeout.
        try:
            await persona.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(persona.wait_ready(), self.reload_wait)
        except BaseException:
            await persona.close()
            raise
        old = self.personas.get(old_key) if old_key is not None else None
        if old is not None and old.memory is not None and persona.memory is not None:
            persona.memory.adopt(old.memory)
        personas = dict(self.personas)
        if old_key is not None and old_key != new_key:
            # Keep the persona's place in the list when only its name changed.
            personas = {new_key if k == old_key else k: persona if k == old_key else p for k, p in personas.items()}
        else:
            personas[new_key] = persona
        self.personas = personas
        self._watched_files[file_key] = new_key
        self._clear_problem(file_key)
        self._update_default(old, persona)
        log.info("persona %r %s from %s", persona.name, "reloaded" if old else "added", path)
        if old is not None:
            self._retire(old)

    def _remove(self, file_key: str, key: str) -> None:
        old = self.personas.get(key)
        personas = {k: p for k, p in self.personas.items() if k != key}
        del self._watched_files[file_key]
        replacement: Persona | None = None
        if not personas:
            # The last persona went away: serve the built-in one rather than nothing.
            replacement = self._build(default_persona_spec())
            personas[model_key(replacement.name)] = replacement
            asyncio.get_running_loop().create_task(replacement.start())
        self.personas = personas
        self._update_default(old, replacement)
        log.info("persona %r removed (%s was deleted)", old.name if old else key, file_key)
        if old is not None:
            self._retire(old)

    def _update_default(self, old: Persona | None, new: Persona | None) -> None:
        if self._default_name and self._default_name in self.personas:
            self.default = self.personas[self._default_name]
        elif old is not None and self.default is old and new is not None:
            self.default = new
        elif self.default not in self.personas.values():
            self.default = next(iter(self.personas.values()))

    def _retire(self, persona: Persona) -> None:
        async def close_later() -> None:
            try:
                await asyncio.sleep(self.retire_grace)
            finally:
                await persona.close()

        task = asyncio.get_running_loop().create_task(close_later(), name=f"retire {persona.name}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _problem(self, file_key: str, path: str, problem: str) -> None:
        self._problems[file_key] = {"file": path, "problem": problem}
        kept = self._watched_files.get(file_key)
        keeping = f"; still serving the previous version of {self.personas[kept].name!r}" if kept else ""
        log.warning("persona file %s: %s%s", path, secrets.redact(problem), keeping)

    def _clear_problem(self, file_key: str) -> None:
        self._problems.pop(file_key, None)

    @property
    def problems(self) -> list[dict[str, str]]:
        """Files that cannot be served right now, for `/status`: `[{"file", "problem"}]`, secrets masked."""
        return [{"file": p["file"], "problem": secrets.redact(p["problem"])} for p in self._problems.values()]
