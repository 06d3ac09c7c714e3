"""Time zones: checking IANA names (the request's `timezone` extension, a persona's `timezone`), the server's own
zone, and the "now" the clock answers from (which tests may fix with `PERSONA_SERVER_FAKE_NOW`)."""

from __future__ import annotations

import os
from datetime import datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator

FAKE_NOW_ENV = "PERSONA_SERVER_FAKE_NOW"
MAX_NAME_CHARS = 64


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA zone of a name ("Europe/Lisbon", "UTC"). Raises ValueError for a name that is none."""
    if not name or len(name) > MAX_NAME_CHARS or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"unknown time zone {name[:MAX_NAME_CHARS]!r}; use an IANA name such as 'Europe/Lisbon'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Lisbon'"
        ) from None


def _checked(name: str) -> str:
    zone(name)
    return name


TimezoneName = Annotated[str, AfterValidator(_checked)]
"""A pydantic field type: an IANA time zone name, checked."""


@lru_cache(maxsize=8)
def _local_zone(tz_env: str | None) -> tzinfo:
    for candidate in (tz_env.lstrip(":") if tz_env else None, _etc_localtime()):
        if candidate:
            try:
                return zone(candidate)
            except ValueError:
                pass
    return datetime.now().astimezone().tzinfo or ZoneInfo("UTC")


def _etc_localtime() -> str | None:
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        return None
    marker = "/zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else None


def local_zone() -> tzinfo:
    """The server's zone: `TZ` when it names one, else the system's."""
    return _local_zone(os.environ.get("TZ"))


def now(tz: tzinfo) -> datetime:
    """The current time in a zone, or the fixed time `PERSONA_SERVER_FAKE_NOW` gives (ISO 8601; for tests).

    A fixed time without an offset is read in the server's zone.
    """
    fixed = os.environ.get(FAKE_NOW_ENV)
    if fixed:
        moment = _parse_fixed(fixed)
        return moment.astimezone(tz)
    return datetime.now(tz)


@lru_cache(maxsize=4)
def _parse_fixed(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=local_zone())
