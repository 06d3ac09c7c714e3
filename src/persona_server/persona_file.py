"""Reading a persona file safely: only a regular file, of bounded size and nesting, is ever read.

A persona directory is watched, and anyone who can write to it can put anything there: a FIFO (opening it for
reading would block until a writer comes, stopping the watcher for good), a symlink to `/dev/zero` (endless), a
huge file, or JSON nested a thousand levels deep (valid, but it exhausts recursion in whatever walks it). Each
is refused with a one-line problem, before or instead of reading it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import orjson

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64


class FileProblem(Exception):
    """Why a persona file cannot be read; the message is one line (`no such file`, ...)."""


def read_json_file(path: Path, *, max_bytes: int = MAX_FILE_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The decoded JSON of a regular file of at most `max_bytes`, nested at most `max_depth` deep."""
    try:
        # stat follows symlinks: what matters is what the name leads to. Nothing that is not a regular file
        # is opened at all (opening a device may have effects of its own).
        _check(os.stat(path), max_bytes)
        # O_NONBLOCK: should the file have been swapped for a FIFO since the stat, opening it does not block.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileProblem("no such file") from None
    except OSError as exc:
        raise FileProblem(f"cannot read: {exc.strerror or exc}") from None
    try:
        _check(os.fstat(fd), max_bytes)
        with os.fdopen(fd, "rb", closefd=False) as file:
            raw = file.read(max_bytes + 1)  # a file that grew since the stat is still read only this far
    except OSError as exc:
        raise FileProblem(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(raw) > max_bytes:
        raise FileProblem(f"too large (more than {max_bytes} bytes)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "ecursion" in str(exc):
            raise FileProblem(f"nested too deeply (more than {max_depth} levels)") from None
        raise FileProblem(f"invalid JSON: {exc}") from None
    if _depth_exceeds(data, max_depth):
        raise FileProblem(f"nested too deeply (more than {max_depth} levels)")
    return data


def _check(info: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise FileProblem(f"not a regular file ({_kind(info.st_mode)}); refusing to read it")
    if info.st_size > max_bytes:
        raise FileProblem(f"too large ({info.st_size} bytes; at most {max_bytes})")


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a file")


def _depth_exceeds(data: Any, max_depth: int) -> bool:
    """Whether containers nest deeper than `max_depth`; iterative, as the point is to spare the stack."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
