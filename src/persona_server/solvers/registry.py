"""Solver names -> solver classes: built-ins, their aliases, and third-party entry points.

Built-ins are listed as "module:Class" strings and imported on first use, so a persona pays only for the
solvers it names (WordNet or an LLM runtime are heavy imports). Third-party packages register solvers in the
`persona_server.solvers` entry-point group; a built-in name always wins over an entry point of the same name.
A name that is none of these is looked up among the installed OpenVoiceOS plugins (`solvers/ovos.py`); written
as `ovos:NAME` it always means the installed plugin, even where a built-in has the same name.
"""

from __future__ import annotations

import importlib
import logging
from functools import cache
from importlib.metadata import entry_points

from persona_server.solvers.base import Solver

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "persona_server.solvers"

# Canonical names are the ones OpenVoiceOS packages register, so persona files written for it load unchanged.
BUILTINS: dict[str, str] = {
    "ovos-solver-failure-plugin": "persona_server.solvers.failure:FailureSolver",
    "ovos-solver-rivescript-plugin": "persona_server.solvers.rivescript:RiveScriptSolver",
    "ovos-solver-wordnet-plugin": "persona_server.solvers.wordnet:WordNetSolver",
    "ovos-solver-aiml-plugin": "persona_server.solvers.aiml:AIMLSolver",
    "ovos-solver-plugin-wikipedia": "persona_server.solvers.wikipedia:WikipediaSolver",
    "ovos-solver-plugin-ddg": "persona_server.solvers.ddg:DuckDuckGoSolver",
    "ovos-solver-plugin-wolfram-alpha": "persona_server.solvers.wolfram:WolframAlphaSolver",
    "ovos-solver-openai-plugin": "persona_server.solvers.openai_llm:OpenAISolver",
    "ovos-solver-gguf-plugin": "persona_server.solvers.gguf:GGUFSolver",
    "persona-solver-mixture": "persona_server.solvers.mixture:MixtureSolver",
    "persona-solver-math": "persona_server.solvers.arithmetic:MathSolver",
    "persona-solver-units": "persona_server.solvers.units:UnitsSolver",
    "persona-solver-clock": "persona_server.solvers.clock:ClockSolver",
    "ovos-solver-knowledge-plugin": "persona_server.solvers.knowledge:KnowledgeSolver",
}

# Other names the same solvers go by in published persona files and OpenVoiceOS documentation.
ALIASES: dict[str, str] = {
    "ovos-solver-wikipedia-plugin": "ovos-solver-plugin-wikipedia",
    "ovos-solver-ddg-plugin": "ovos-solver-plugin-ddg",
    "ovos-solver-wolfram-alpha-plugin": "ovos-solver-plugin-wolfram-alpha",
    "ovos-solver-openai-persona-plugin": "ovos-solver-openai-plugin",
    # The names OpenVoiceOS's packages go by today (its current manuals write OldSchoolBot with them).
    "ovos-wikipedia-plugin": "ovos-solver-plugin-wikipedia",
    "ovos-ddg-plugin": "ovos-solver-plugin-ddg",
    "ovos-wolfram-alpha-plugin": "ovos-solver-plugin-wolfram-alpha",
    "ovos-wordnet-plugin": "ovos-solver-wordnet-plugin",
    "ovos-question-solver-wordnet": "ovos-solver-wordnet-plugin",
    "ovos-chat-openai-plugin": "ovos-solver-openai-plugin",
    "ovos-chat-gguf-plugin": "ovos-solver-gguf-plugin",
    "failure": "ovos-solver-failure-plugin",
    "rivescript": "ovos-solver-rivescript-plugin",
    "wordnet": "ovos-solver-wordnet-plugin",
    "aiml": "ovos-solver-aiml-plugin",
    "wikipedia": "ovos-solver-plugin-wikipedia",
    "ddg": "ovos-solver-plugin-ddg",
    "wolfram-alpha": "ovos-solver-plugin-wolfram-alpha",
    "openai": "ovos-solver-openai-plugin",
    "gguf": "ovos-solver-gguf-plugin",
    "mixture": "persona-solver-mixture",
    "math": "persona-solver-math",
    "units": "persona-solver-units",
    "clock": "persona-solver-clock",
    "knowledge": "ovos-solver-knowledge-plugin",
}


# Solvers registered in code by an embedding application (see `register`).
_REGISTERED: dict[str, type[Solver]] = {}


class UnknownSolver(LookupError):
    pass


def register(cls: type[Solver], *names: str) -> type[Solver]:
    """Make a solver class available under its `name` (and extra names) without an entry point."""
    for name in (cls.name, *cls.aliases, *names):
        if name:
            _REGISTERED[name] = cls
    return cls


# Packages that provide well-known OpenVoiceOS plugin names we do not build in, for the "unknown solver" hint.
KNOWN_PACKAGES: dict[str, str] = {
    "ovos-solver-yes-no-plugin": "ovos-solver-yes-no-plugin",
    "ovos-solver-bm25-squad-plugin": "ovos-solver-bm25-plugin",
    "ovos-solver-bm25-freebase-plugin": "ovos-solver-bm25-plugin",
    "ovos-solver-hivemind-plugin": "ovos-solver-hivemind-plugin",
    "ovos-solver-pandorabots-plugin": "ovos-solver-pandorabots-plugin",
    "ovos-a2a-solver": "ovos-a2a-solver-plugin",
    "ovos-messagebus": "ovos-messagebus-chat-plugin",
}


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)


def is_installed_plugin_name(name: str) -> bool:
    """Whether a name asks for an installed OpenVoiceOS plugin explicitly (`ovos:NAME`)."""
    return name.startswith("ovos:")


@cache
def _entry_points() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Every solver name that can be resolved (built-ins, aliases, installed third-party solvers)."""
    return sorted({*BUILTINS, *ALIASES, *_REGISTERED, *_entry_points()})


def _installed_plugin(name: str) -> type[Solver]:
    from persona_server.solvers import ovos

    plugin = ovos.find(name)
    if plugin is None:
        bare = name.removeprefix(ovos.PREFIX)
        package = KNOWN_PACKAGES.get(bare)
        where = f"pip install {package}" if package else "install the package that provides it"
        raise UnknownSolver(f"unknown solver {name!r}: not a built-in, and no installed OpenVoiceOS plugin has that "
                            f"name (to run OpenVoiceOS plugins: {ovos.EXTRA_HINT}, then {where})")
    try:
        return ovos.solver_class(plugin)
    except Exception as exc:
        raise UnknownSolver(f"solver {name!r} ({plugin.group}) failed to import: {type(exc).__name__}: {exc}") from exc


def resolve(name: str) -> type[Solver]:
    """The solver class for a name. Raises UnknownSolver with a readable reason."""
    if is_installed_plugin_name(name):
        return _installed_plugin(name)
    canonical = canonical_name(name)
    target = BUILTINS.get(canonical)
    if canonical in _REGISTERED:
        cls: object = _REGISTERED[canonical]
    elif target is not None:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UnknownSolver(f"solver {name!r} needs a missing package: {exc.name or exc}") from exc
        cls = getattr(module, attr)
    else:
        ep = _entry_points().get(canonical)
        if ep is None:
            return _installed_plugin(name)
        try:
            cls = ep.load()  # type: ignore[attr-defined]
        except Exception as exc:
            raise UnknownSolver(f"solver {name!r} failed to import: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Solver)):
        raise UnknownSolver(f"{name!r} does not name a persona_server Solver class")
    return cls
