"""The per-user cache directory: data prepared once (normalized WordNet files, learned AIML brains) and reused.

`$PERSONA_SERVER_CACHE` wins; otherwise `$XDG_CACHE_HOME/persona-server`, else `~/.cache/persona-server`.
Everything written here is derived data: deleting the directory is always safe, it is rebuilt on next use.
Several server processes may start at once, so every write is atomic (a temporary name, then a rename).
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

ENV_VAR = "PERSONA_SERVER_CACHE"
APP_DIR = "persona-server"


def cache_root() -> Path:
    """The cache directory of this user (not created)."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / APP_DIR


def cache_dir(*parts: str) -> Path:
    """A sub-directory of the cache, created if missing."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def fill_dir_atomically(target: Path, fill: Callable[[Path], None]) -> Path:
    """Make `target` exist with the contents `fill(tmp_dir)` writes, or reuse it if it already exists.

    `fill` writes into a fresh temporary sibling that is then renamed into place, so a reader never sees a
    half-written directory. When two processes race, the loser's rename fails and its copy is dropped.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        fill(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
            # Another process finished first: its copy is as good as ours.
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def write_file_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """`write(tmp_path)` writes the file; it then replaces `target` in one step (last writer wins)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return target


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_was_enabled = False


@contextlib.contextmanager
def loading_static_data() -> Iterator[None]:
    """Build a large, long-lived object graph (a dictionary index, an AIML brain) quickly and keep it cheap.

    Cyclic GC runs over and over while millions of containers are being created (≈ 2.5x slower loads), and
    afterwards every full collection would walk them again, pausing the whole server for about a second.
    So collection is paused while loading, and what was loaded is moved to the permanent generation
    (`gc.freeze`). Nested or concurrent loads share one pause.
    """
    global _gc_holders, _gc_was_enabled
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0:
                gc.freeze()
                if _gc_was_enabled:
                    gc.enable()
