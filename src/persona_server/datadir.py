"""The per-user data directory: what users put in and expect to keep (uploaded files, vector stores).

Unlike the cache (`cache.py`), nothing here can be rebuilt: it is never cleaned up. `--data-dir` or
`$PERSONA_SERVER_DATA_DIR` wins; otherwise `$XDG_DATA_HOME/persona-server`, else `~/.local/share/persona-server`.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "PERSONA_SERVER_DATA_DIR"
APP_DIR = "persona-server"


def data_root(explicit: str | None = None) -> Path:
    """The data directory (not created)."""
    chosen = explicit or os.environ.get(ENV_VAR)
    if chosen:
        return Path(chosen).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / APP_DIR
