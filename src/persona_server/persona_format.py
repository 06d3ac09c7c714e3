"""Today's OpenVoiceOS persona keys: `handlers`, `memory_module`, `system_prompt(_strategy)`, `description`.

Persona files now say `handlers` (`solvers` is kept as an alias), may turn memory off or pick a memory plugin with
`memory_module`, and may give a persona-level `system_prompt` with a `system_prompt_strategy`:

- `append` (the default): the persona's prompt first, then the client's system messages;
- `replace`: the client's system messages, when it sends any, replace the persona's prompt;
- `ignore`: the client's system messages are dropped (the persona's prompt, if any, stays).

The strategy is applied once, on the way into the chain (`Persona.stream`), so every protocol gets the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from persona_server.memory import MemorySettings, parse_memory_setting
from persona_server.query import Message, Query

Strategy = Literal["append", "replace", "ignore"]
STRATEGIES: tuple[Strategy, ...] = ("append", "replace", "ignore")
STRATEGY_ENV = "PERSONA_SYSTEM_PROMPT_STRATEGY"

# OpenVoiceOS's default memory plugin: its `max_history` turns map onto our per-conversation memory.
SHORT_TERM_MEMORY = "ovos-agents-short-term-memory-plugin"
DEFAULT_MAX_HISTORY = 5

# The persona-level keys of this module (not solver blocks).
KEYS = ("handlers", "memory_module", "system_prompt", "system_prompt_strategy", "description")

_SYSTEM_ROLES = ("system", "developer")
# Bounds a persona file may not exceed with these keys.
MAX_PROMPT_CHARS = 100_000
MAX_DESCRIPTION_CHARS = 10_000


@dataclass(frozen=True, slots=True)
class FormatKeys:
    """What the newer keys of one persona file say."""

    solvers: Any
    memory: MemorySettings | None
    memory_plugin: str | None  # another installed memory plugin to run
    system_prompt: str | None
    strategy: Strategy
    description: str


def parse_format_keys(data: dict[str, Any]) -> FormatKeys:
    """Read the newer keys of a decoded persona file. Raises ValueError naming the key at fault."""
    solvers = data.get("solvers")
    if "handlers" in data:
        if "solvers" in data and data["solvers"] != data["handlers"]:
            raise ValueError("'handlers' and 'solvers' name different chains: give one of them")
        solvers = data["handlers"]
    memory = parse_memory_setting(data.get("memory"))
    memory_plugin: str | None = None
    if "memory_module" in data:
        module = data["memory_module"]
        if module is None or module is False:
            memory = None
        elif not isinstance(module, str) or not module.strip():
            raise ValueError("'memory_module' must be a memory plugin's name, or null to turn memory off")
        elif module.strip() == SHORT_TERM_MEMORY:
            memory = _short_term(data.get(SHORT_TERM_MEMORY), memory)
        else:
            memory_plugin, memory = module.strip(), None
    prompt = data.get("system_prompt")
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS):
        raise ValueError(f"'system_prompt' must be a string of at most {MAX_PROMPT_CHARS} characters")
    strategy = data.get("system_prompt_strategy", os.environ.get(STRATEGY_ENV) or "append")
    if strategy not in STRATEGIES:
        where = "'system_prompt_strategy'" if "system_prompt_strategy" in data else STRATEGY_ENV
        raise ValueError(f"{where} must be one of {', '.join(STRATEGIES)}")
    description = data.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
        raise ValueError(f"'description' must be a string of at most {MAX_DESCRIPTION_CHARS} characters")
    return FormatKeys(solvers=solvers, memory=memory, memory_plugin=memory_plugin, system_prompt=prompt or None,
                      strategy=strategy, description=description.strip())


def _short_term(block: Any, memory: MemorySettings | None) -> MemorySettings | None:
    if block is not None and not isinstance(block, dict):
        raise ValueError(f"the '{SHORT_TERM_MEMORY}' block must be an object")
    turns = (block or {}).get("max_history", memory.turns if memory else DEFAULT_MAX_HISTORY)
    if not isinstance(turns, int) or isinstance(turns, bool) or turns < 0:
        raise ValueError(f"'{SHORT_TERM_MEMORY}.max_history' must be 0 or more turns")
    if not turns:
        return None
    return MemorySettings(turns=turns) if memory is None else MemorySettings(turns, memory.ttl, memory.conversations)


def applies(prompt: str | None, strategy: Strategy) -> bool:
    """Whether a persona's prompt settings change any query (the common case is no: nothing to do per request)."""
    return bool(prompt) or strategy == "ignore"


def apply_system_prompt(query: Query, prompt: str | None, strategy: Strategy) -> None:
    """Apply the persona's system prompt to the query's messages, in place, by the strategy."""
    messages = query.messages
    client = [m for m in messages if m.role in _SYSTEM_ROLES]
    rest = [m for m in messages if m.role not in _SYSTEM_ROLES]
    own = [Message("system", prompt)] if prompt else []
    if strategy == "ignore":
        system = own
    elif strategy == "replace":
        system = client or own
    else:
        system = [*own, *client]
    query.messages = [*system, *rest]
