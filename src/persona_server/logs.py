"""Logging set-up: one handler, secrets masked in every record, chatty HTTP libraries quieted.

Every line written while a request is handled names that request's id (`request_id`, "-" outside a request): the
HTTP layer sets it in a context variable, which asyncio copies into every task the request starts. `text` lines are
for people, `json` lines (one object per line) for log shippers.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Literal

import orjson

from persona_server.secrets import RedactingFilter, redact

FORMAT = "%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s"
LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

# The id of the request being handled; set by the HTTP layer (api/observe.py) for the request's whole life.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (records from libraries too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # A client's own id is masked like any text: it could be a secret of a persona file.
        current = request_id.get()
        record.request_id = redact(current) if current else "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exc_info"] = record.exc_text
        return orjson.dumps(data).decode()


def _iso_time(created: float) -> str:
    seconds = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"


def setup_logging(level: str = "info", *, access_log: bool = False, log_format: LogFormat = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(FORMAT))
    # Masking runs first, so both formats (and the traceback text) only ever see masked messages.
    handler.addFilter(RedactingFilter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO, and URLs can carry API keys as query parameters.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # uvicorn's own loggers propagate to our handler so its lines are masked too.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # One line per request costs throughput: only on request (--access-log).
    logging.getLogger("uvicorn.access").disabled = not access_log
