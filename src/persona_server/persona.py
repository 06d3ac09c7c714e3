"""Personas: loading OpenVoiceOS-format persona files, building their solvers, answering queries.

A persona file is a JSON object: `name` (the file stem when absent), `solvers` (ordered names) and, for each
solver, an optional top-level block named after it holding its config. Any other key (`gender`, `attitudes`,
`"//"` comments) is accepted and ignored. A broken *file* is a `PersonaError`; a solver that cannot start is
not: it is marked as failed, reported, and the rest of the chain serves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
from pydantic import ValidationError

from persona_server import persona_format, secrets
from persona_server.chain import ON_NO_ANSWER, AnswerStream, run_chain
from persona_server.memory import ConversationMemory, MemorySettings
from persona_server.persona_file import FileProblem, read_json_file
from persona_server.query import Answer, Query
from persona_server.slot import SolverSlot
from persona_server.solvers import registry
from persona_server.solvers.base import Solver, SolverContext

if TYPE_CHECKING:
    from persona_server.ovos_memory import InstalledMemory
    from persona_server.state import State
    from persona_server.state.redis_memory import SharedMemory

log = logging.getLogger(__name__)

DEFAULT_PERSONA_NAME = "default"
# The built-in persona served when none is given: offline, no download, always answers. A dictionary first (it
# only answers dictionary questions), then chit-chat (which leaves factual questions alone), then an apology.
DEFAULT_SOLVERS: list[str] = [
    # Strict parsers first: they answer only arithmetic, conversions and the clock, and leave "what is a
    # prime number" to the dictionary.
    "persona-solver-math",
    "persona-solver-units",
    "persona-solver-clock",
    "ovos-solver-wordnet-plugin",
    "ovos-solver-rivescript-plugin",
    "ovos-solver-failure-plugin",
]

# Persona-level settings that are not solver blocks.
PERSONA_SETTINGS = ("speculative", "memory", "on_no_answer")
# OpenVoiceOS's newer persona-level keys (see persona_format.py).
FORMAT_SETTINGS = persona_format.KEYS


class PersonaError(Exception):
    """A persona file that cannot be used at all; the message names the file and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


@dataclass(slots=True)
class PersonaSpec:
    """A validated persona definition, before any solver is built."""

    name: str
    solvers: list[str]
    blocks: dict[str, Any] = field(default_factory=dict)
    speculative: bool = True
    source: str = "<built-in>"
    # Per-conversation memory for question solvers (see persona_server.memory); None = off.
    memory: MemorySettings | None = None
    # When no solver answers: "apology" (the failure solver's lines) or "error" (422, as the original answers).
    on_no_answer: str = "apology"
    description: str = ""
    # Persona-level system prompt and how it combines with the client's system messages (persona_format.py).
    system_prompt: str | None = None
    system_prompt_strategy: persona_format.Strategy = "append"
    # An installed OpenVoiceOS memory plugin (`memory_module`) to run instead of our memory.
    memory_plugin: str | None = None

    def block(self, solver_name: str) -> Any:
        """The config block for a solver, found under its written name, canonical name or any alias."""
        if solver_name in self.blocks:
            return self.blocks[solver_name]
        if registry.is_installed_plugin_name(solver_name):
            return self.block(solver_name.split(":", 1)[1])
        canonical = registry.canonical_name(solver_name)
        for key, value in self.blocks.items():
            if registry.canonical_name(key) == canonical:
                return value
        return {}


def parse_persona(data: Any, *, source: str, default_name: str) -> PersonaSpec:
    """Validate a decoded persona file. Raises PersonaError on anything that makes the file unusable."""
    if not isinstance(data, dict):
        raise PersonaError(source, f"expected a JSON object, got {_json_type(data)}")
    if "solvers" not in data and "handlers" not in data:
        raise PersonaError(source, "missing 'solvers' (or 'handlers': a list of solver names)")
    try:
        keys = persona_format.parse_format_keys(data)
    except ValueError as exc:
        raise PersonaError(source, str(exc)) from None
    solvers = keys.solvers
    if not isinstance(solvers, list) or not all(isinstance(s, str) and s.strip() for s in solvers):
        raise PersonaError(source, "'solvers' must be a list of solver names (non-empty strings)")
    if not solvers:
        raise PersonaError(source, "'solvers' is empty: a persona needs at least one solver")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise PersonaError(source, "'name' must be a non-empty string")
    speculative = data.get("speculative", True)
    if not isinstance(speculative, bool):
        raise PersonaError(source, "'speculative' must be true or false")
    memory = keys.memory
    on_no_answer = data.get("on_no_answer", "apology")
    if on_no_answer not in ON_NO_ANSWER:
        raise PersonaError(source, "'on_no_answer' must be \"apology\" or \"error\"")
    blocks = {k: v for k, v in data.items() if k not in ("name", "solvers", *PERSONA_SETTINGS, *FORMAT_SETTINGS)}
    secrets.register_config(blocks)
    return PersonaSpec(
        name=name.strip(),
        solvers=[s.strip() for s in solvers],
        blocks=blocks,
        speculative=speculative,
        source=source,
        memory=memory,
        on_no_answer=on_no_answer,
        description=keys.description,
        system_prompt=keys.system_prompt,
        system_prompt_strategy=keys.strategy,
        memory_plugin=keys.memory_plugin,
    )


def load_persona_file(path: str | Path) -> PersonaSpec:
    path = Path(path)
    try:
        data = read_json_file(path)
    except FileProblem as exc:
        raise PersonaError(str(path), str(exc)) from None
    return parse_persona(data, source=str(path), default_name=path.stem)


def default_persona_spec() -> PersonaSpec:
    # The chit-chat brain introduces itself by this name rather than by the model id "default".
    blocks = {"ovos-solver-rivescript-plugin": {"name": "Persona"}}
    return PersonaSpec(name=DEFAULT_PERSONA_NAME, solvers=list(DEFAULT_SOLVERS), blocks=blocks)


# Block keys that name other solvers (grounding, tools, mixtures): `validate` checks them too.
NESTED_SOLVER_KEYS = ("context_solvers", "tool_solvers", "workers", "judge")


def nested_problems(spec: PersonaSpec) -> list[tuple[str, str]]:
    """Solver names inside the blocks of a persona's chain that do not resolve: [(where, problem)]."""
    problems: list[tuple[str, str]] = []
    if spec.memory_plugin:
        from persona_server.solvers import ovos

        if ovos.find_memory(spec.memory_plugin) is None:
            problems.append((f"memory_module {spec.memory_plugin!r}", "no installed memory plugin has that name "
                             f"(opm.agents.memory; {ovos.EXTRA_HINT}, then install its package)"))
    seen: set[str] = set()
    pending = [(name, spec.block(name)) for name in spec.solvers]
    while pending:
        owner, block = pending.pop(0)
        if not isinstance(block, dict):
            continue
        for key in NESTED_SOLVER_KEYS:
            refs = block.get(key)
            for ref in refs if isinstance(refs, list) else [refs] if refs is not None else []:
                where = f"solver {owner!r}: {key}"
                if isinstance(ref, str):
                    name, inline = ref, None
                elif isinstance(ref, dict) and isinstance(ref.get("solver") or ref.get("name"), str):
                    name, inline = ref.get("solver") or ref.get("name"), ref
                else:
                    problems.append((where, "an entry must be a solver name or {\"solver\": name, ...}"))
                    continue
                try:
                    registry.resolve(name)
                except registry.UnknownSolver as exc:
                    problems.append((f"{where}: {name!r}", str(exc)))
                    continue
                if name not in seen or inline is not None:
                    seen.add(name)
                    pending.append((name, inline if inline is not None else spec.block(name)))
    return problems


def _json_type(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def describe_validation_error(exc: ValidationError) -> str:
    """Pydantic's errors without the offending input values: config values may be secrets."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "config"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


class Persona:
    """A named chain of solvers that answers queries."""

    def __init__(
        self,
        spec: PersonaSpec,
        *,
        http: Callable[[], httpx.AsyncClient],
        thread_limiter: anyio.CapacityLimiter | None = None,
        state: State | None = None,
    ) -> None:
        self.spec = spec
        self._state = state
        self.name = spec.name
        self._http = http
        self._limiter = thread_limiter
        # One instance per solver name: the chain and the solvers that use others share it (and its cache).
        self._instances: dict[str, Solver] = {}
        self.slots = [self._build_slot(name) for name in spec.solvers]
        # Whether answers start solvers speculatively: only if one of them may (a check spared on every request).
        self._speculative = spec.speculative and any(slot.solver is not None and slot.solver.may_speculate
                                                     for slot in self.slots)
        self._load_tasks: list[asyncio.Task[None]] = []
        self.memory: ConversationMemory | SharedMemory | None = None
        if spec.memory:
            self.memory = state.memory(self.name, spec.memory) if state is not None else ConversationMemory(spec.memory)
        self.memory_plugin = self._memory_plugin() if spec.memory_plugin else None

    # -- building -----------------------------------------------------------------------------------------

    def _context(self) -> SolverContext:
        return SolverContext(
            persona=self.name, http=self._http, build_solver=self.build_solver, thread_limiter=self._limiter,
            state=self._state,
            source=self.spec.source,
        )

    def build_solver(self, name: str) -> Solver:
        """The solver configured from this persona's block for `name`, built once. Raises on any problem."""
        if name not in self._instances:
            self._instances[name] = self._new_solver(name)
        return self._instances[name]

    def _new_solver(self, name: str) -> Solver:
        cls = registry.resolve(name)
        block = self.spec.block(name)
        if not isinstance(block, dict):
            raise ValueError(f"the config block of {name!r} must be a JSON object")
        try:
            options = cls.Options.model_validate(block)
        except ValidationError as exc:
            raise ValueError(f"bad config: {describe_validation_error(exc)}") from None
        return cls(options, self._context())

    def _build_slot(self, name: str) -> SolverSlot:
        slot = SolverSlot(name=name)
        block = self.spec.block(name)
        if isinstance(block, dict) and block.get("enabled") is False:
            slot.state = "disabled"
            slot.loaded.set()
            return slot
        try:
            slot.solver = self.build_solver(name)
        except Exception as exc:
            self._fail(slot, str(exc) or type(exc).__name__)
        return slot

    def _memory_plugin(self) -> InstalledMemory:
        from persona_server.ovos_memory import InstalledMemory

        assert self.spec.memory_plugin is not None
        block = self.spec.block(self.spec.memory_plugin)
        return InstalledMemory(self.spec.memory_plugin, block if isinstance(block, dict) else {},
                               persona=self.name, run_blocking=self._context().run_blocking)

    def _fail(self, slot: SolverSlot, reason: str) -> None:
        slot.state = "error"
        slot.error = reason
        slot.loaded.set()
        log.warning("persona %r: solver %r cannot start (%s); the rest of the chain serves", self.name,
                    slot.name, secrets.redact(reason))

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start loading every solver in the background; returns at once."""
        for slot in self.slots:
            if slot.solver is not None and slot.state == "loading":
                self._load_tasks.append(asyncio.create_task(self._load(slot), name=f"load {slot.name}"))
        if self.memory_plugin is not None:
            self._load_tasks.append(asyncio.create_task(self.memory_plugin.load(), name="load memory_module"))

    async def _load(self, slot: SolverSlot) -> None:
        assert slot.solver is not None
        try:
            await slot.solver.ensure_loaded()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(slot, f"failed to load: {exc}" if str(exc) else f"failed to load: {type(exc).__name__}")
            return
        slot.state = "ready"
        slot.loaded.set()

    async def wait_ready(self) -> None:
        await asyncio.gather(*(slot.loaded.wait() for slot in self.slots))
        if self.memory_plugin is not None:
            await self.memory_plugin.loaded.wait()

    @property
    def ready(self) -> bool:
        if self.memory_plugin is not None and self.memory_plugin.state == "loading":
            return False
        return all(slot.state != "loading" for slot in self.slots)

    async def close(self) -> None:
        for task in self._load_tasks:
            task.cancel()
        if self.memory_plugin is not None:
            await self.memory_plugin.close()
        for name, solver in self._instances.items():
            try:
                await solver.close()
            except Exception:
                log.exception("closing solver %r", name)

    # -- answering ----------------------------------------------------------------------------------------

    def stream(self, query: Query) -> AnswerStream:
        query.persona = self.name
        spec = self.spec
        if persona_format.applies(spec.system_prompt, spec.system_prompt_strategy):
            persona_format.apply_system_prompt(query, spec.system_prompt, spec.system_prompt_strategy)
        memory = self.memory_plugin if self.memory_plugin is not None else self.memory
        if memory is None:
            return run_chain(self.slots, query, speculative=self._speculative, persona=self.name,
                             on_no_answer=spec.on_no_answer)
        hooks = memory.hooks(query)
        return run_chain(self.slots, hooks.query, speculative=self._speculative, persona=self.name,
                         on_no_answer=spec.on_no_answer, on_complete=hooks.on_complete, prepare=hooks.prepare)

    async def answer(self, query: Query) -> Answer:
        stream = self.stream(query)
        text = await stream.text()
        return Answer(text=text, solver=stream.solver, sources=stream.sources, finish_reason=stream.finish_reason)

    def status(self) -> dict[str, Any]:
        if self.memory_plugin is not None:
            return {**self._status(), "memory_module": self.memory_plugin.status()}
        return self._status()

    def _status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.spec.description,
            "source": self.spec.source,
            "ready": self.ready,
            "solvers": [slot.status() for slot in self.slots],
            "on_no_answer": self.spec.on_no_answer,
        }

    @property
    def always_answers(self) -> bool:
        """Whether a solver of the chain answers every question (else some get the `on_no_answer` ending)."""
        return any(slot.solver is not None and slot.state != "error" and slot.solver.always_answers
                   for slot in self.slots)
