"""Personas from where OpenVoiceOS keeps them: the environment, `opm.plugin.persona` entry points, the user dir.

- **The environment** (how the original's container images run it), used when no persona file or directory is
  given: `PERSONA_PATH` names a persona file; otherwise `SOLVER_PLUGIN` (default: the OpenAI chat solver when
  any `LLM_*` variable is set), `PERSONA_NAME`, `LLM_URL`, `LLM_KEY`, `LLM_MODEL`, `LLM_SYSTEM_PROMPT` make a
  one-solver persona. The key is a secret: it is registered so logs mask it.
- **`--ovos-personas`**: the personas installed packages ship through the `opm.plugin.persona` entry-point group,
  and every `*.json` in `~/.config/ovos_persona/` (`$XDG_CONFIG_HOME/ovos_persona/` when set, as OpenVoiceOS
  honours it). Each is loaded with the same rules as a persona file; one that cannot be used is a problem shown
  in `/status`, never fatal: these are found, not asked for by name.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from persona_server import secrets
from persona_server.persona import PersonaError, PersonaSpec, load_persona_file, parse_persona

log = logging.getLogger(__name__)

ENV_SOLVER = "ovos-chat-openai-plugin"
_LLM_KEYS = {"LLM_URL": "api_url", "LLM_KEY": "key", "LLM_MODEL": "model", "LLM_SYSTEM_PROMPT": "system_prompt"}
PERSONA_DIR_NAME = "ovos_persona"
# A user directory is not ours to trust with any number of files.
MAX_USER_PERSONAS = 1000


def env_persona(environ: dict[str, str] | os._Environ[str] = os.environ) -> PersonaSpec | None:
    """The persona the environment describes, or None when it describes none. Raises PersonaError."""
    path = environ.get("PERSONA_PATH", "").strip()
    if path:
        return load_persona_file(path)
    llm = {field: environ[var] for var, field in _LLM_KEYS.items() if environ.get(var, "").strip()}
    solver = environ.get("SOLVER_PLUGIN", "").strip() or (ENV_SOLVER if llm else "")
    if not solver:
        return None
    if "key" in llm:
        secrets.register(llm["key"])
    name = environ.get("PERSONA_NAME", "").strip() or solver
    data: dict[str, Any] = {"name": name, "solvers": [solver], solver: llm}
    return parse_persona(data, source="<environment>", default_name=name)


def user_persona_dir(environ: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    base = environ.get("XDG_CONFIG_HOME", "").strip()
    root = Path(base) if base else Path.home() / ".config"
    return root / PERSONA_DIR_NAME


def ovos_persona_specs() -> tuple[list[PersonaSpec], list[dict[str, str]]]:
    """Personas of `opm.plugin.persona` entry points and of the user's ovos_persona directory, and a problem for
    each one that cannot be used."""
    from persona_server.catalog import entry_point_specs

    specs, problems = entry_point_specs(group="opm.plugin.persona")
    directory = user_persona_dir()
    if directory.is_dir():
        files = sorted(directory.glob("*.json"))
        if len(files) > MAX_USER_PERSONAS:
            problems.append({"file": str(directory), "problem": f"more than {MAX_USER_PERSONAS} persona files; "
                             f"the first {MAX_USER_PERSONAS} are served"})
        for file in files[:MAX_USER_PERSONAS]:
            try:
                specs.append(load_persona_file(file))
            except PersonaError as exc:
                problems.append({"file": exc.source, "problem": exc.problem})
                log.warning("persona %s: %s", exc.source, secrets.redact(exc.problem))
    return specs, problems
