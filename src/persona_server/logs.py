"""Logging set-up: one handler, secrets masked in every record, chatty HTTP libraries quieted."""

from __future__ import annotations

import logging
import sys

from persona_server.secrets import RedactingFilter

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str = "info", *, access_log: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter())
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
