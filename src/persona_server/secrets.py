"""Keeping persona-file secrets (API keys, app ids) out of every log line and response.

`key=...` query parameters are masked too: that is where Gemini clients may put the server's own API key.

Loading a persona registers the values of secret-looking keys, and the credentials of any URL that carries
them (`http://user:pass@host/`, also in their Basic-auth base64 form, which upstreams quote in errors); `redact`
masks them in any text, and `RedactingFilter` applies that to every log record, including those of libraries
(httpx logs request URLs, which carry Wolfram's appid as a query parameter).
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

_SECRET_KEY = re.compile(r"(^|_|-)(key|api_?key|appid|app_id|token|secret|password|passwd|auth)s?$", re.I)
# Keys whose values are URLs (`api_url`, `base_url`, `endpoint`): only there is `x@` a credential, not prose.
_URL_KEY = re.compile(r"(url|uri|endpoint|host)$", re.I)
_MASK = "***"
_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def register(value: str) -> None:
    global _pattern
    # Very short values would mask ordinary words; no real key is that short.
    if len(value) < 4:
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
        ordered = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def split_url_credentials(url: str) -> tuple[str, str | None, str | None]:
    """The URL without its `user:password@`, and the percent-decoded user and password (None when absent)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), unquote(user), unquote(password) if colon else None


def basic_credentials(user: str, password: str | None) -> str:
    """The base64 `user:password` of an `Authorization: Basic` header."""
    return base64.b64encode(f"{user}:{password or ''}".encode()).decode()


def register_url_credentials(url: str) -> None:
    """Register the credentials a URL carries, in every form they may show up in: as written, decoded, each part,
    and as Basic auth."""
    _, user, password = split_url_credentials(url)
    if user is None:
        return
    register(urlsplit(url).netloc.rpartition("@")[0])
    register(f"{user}:{password}" if password is not None else user)
    register(basic_credentials(user, password))
    for part in (user, password):
        if part:
            register(part)


def register_config(config: Any) -> None:
    """Register the values of secret-looking keys, and URL credentials, anywhere in a persona's config blocks."""
    if isinstance(config, dict):
        for key, value in config.items():
            if isinstance(value, str) and is_secret_key(str(key)):
                register(value)
            elif isinstance(value, str) and _URL_KEY.search(str(key)):
                register_url_credentials(value)
            else:
                register_config(value)
    elif isinstance(config, list):
        for item in config:
            register_config(item)


# Gemini clients may send the server's API key as `?key=KEY`, which the access log would show.
_QUERY_KEY = re.compile(r"([?&]key=)[^&\s\"']+")


def redact(text: str) -> str:
    if "key=" in text:
        text = _QUERY_KEY.sub(r"\1" + _MASK, text)
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(_MASK, text)


class RedactingFilter(logging.Filter):
    """Masks registered secrets in a record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if _pattern is not None and record.exc_info and record.exc_info[1] is not None:
            # Tracebacks are formatted later from exc_info; format now so the text can be masked.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
