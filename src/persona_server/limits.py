"""Bounds on the work one request, one client and one process may demand, and the one place they refuse.

Every refusal by a limit is made by `refuse(limit, ...)`, named by the limit (`body_size`, `header_size`,
`concurrency`, `rate_limit`, `choices`, `header_timeout`, `body_timeout`): the one place refusals are counted
(`persona_server_refused_total{limit}`).

The per-process limiters (`Limits`, checked by the front door, api/front_door.py): at most `max_concurrent`
requests in flight (429 beyond it) and, optionally, a per-client rate (`--rate-limit 60/minute`; 429 with
`Retry-After`). `/health` and `/metrics` are never limited: a load balancer's probe and a scraper must not be
refused when the server is busy.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from starlette.types import ASGIApp, Receive, Scope, Send

from persona_server import metrics
from persona_server.api import errors

if TYPE_CHECKING:
    from persona_server.state.redis_rate import SharedRateLimiter

log = logging.getLogger(__name__)

# Defaults of the server settings, and the fixed per-request bounds (see README, "Limits").
DEFAULT_MAX_BODY = 4 * 1024 * 1024
# Twice the 256 concurrent requests bench/concurrency.py shows one process serves well; beyond it requests are
# refused at once rather than queued without bound (each may hold a body of up to max_body_size in memory).
DEFAULT_MAX_CONCURRENT = 512
DEFAULT_MAX_HEADER = 16 * 1024  # as h11's default and Node's
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
# Load balancers and proxies hold keep-alive connections open between bursts (AWS ALBs: 60 s): outlast them.
DEFAULT_KEEP_ALIVE = 65.0
MAX_MESSAGES = 2000
MAX_N = 8
MAX_CHOICES = 32  # prompts x n of one completion request
MAX_STOP = 4  # as OpenAI
MAX_STOP_CHARS = 256  # holding back a partial stop sequence costs its length squared per piece
MAX_ID_CHARS = 256  # `user`: a key of conversation memory
# How many answers of one request run at once (n choices, prompt lists).
ANSWER_CONCURRENCY = 4
# Paths no limiter refuses: a load balancer's probe and a metrics scraper must get through a busy server.
UNLIMITED_PATHS = frozenset({"/health", "/metrics"})

_CODES = {413: "request_too_large", 429: "rate_limit_exceeded", 408: "request_timeout",
          431: "request_header_fields_too_large"}


def refuse(limit: str, status: int, message: str, *, param: str | None = None) -> errors.APIError:
    """The error a limit answers with, counted. Every limit refuses through here."""
    metrics.record_refusal(limit)
    log.debug("refused by %s: %s", limit, message)
    return errors.APIError(status, message, param=param, code=_CODES.get(status, "invalid_value"))


# -- parsing the flags ----------------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "mi": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3}


def parse_size(text: str) -> int:
    """Bytes from `4194304`, `4MiB`, `512KiB`, `1MB` (KiB/MiB/GiB are powers of 1024, kB/MB/GB of 1000)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (bytes, or a number with KiB, MiB, GiB, kB, MB, GB)")
    size = int(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
    if size < 1:
        raise ValueError("a size must be at least 1 byte")
    return size


_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0}


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    period: float  # seconds

    @classmethod
    def parse(cls, text: str) -> Rate:
        """`60/minute`, `5/second`, `1000/hour` (also `/s`, `/min`, `/h`)."""
        count, _, unit = text.strip().partition("/")
        unit = unit.strip().lower()
        period = _PERIODS.get(unit) or _PERIODS.get(unit.removesuffix("s"))  # "minutes" too
        if not count.strip().isdigit() or int(count) < 1 or period is None:
            raise ValueError(f"not a rate: {text!r} (N/second, N/minute or N/hour, N >= 1)")
        return cls(int(count), period)

    def __str__(self) -> str:
        unit = {1.0: "second", 60.0: "minute", 3600.0: "hour"}[self.period]
        return f"{self.count}/{unit}"


# -- bounded fan-out --------------------------------------------------------------------------------------------

T = TypeVar("T")


async def gather_bounded(jobs: Iterable[Callable[[], Awaitable[T]]], limit: int = ANSWER_CONCURRENCY) -> list[T]:
    """Run jobs with at most `limit` at once; results in order. A failure cancels the rest."""
    jobs = list(jobs)
    if len(jobs) == 1:
        return [await jobs[0]()]
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(run(job)) for job in jobs]
    return [task.result() for task in tasks]


# -- per-client rate ------------------------------------------------------------------------------------------


class RateLimiter:
    """A per-key rate of `count` requests per `period`, with bursts up to `count` (GCRA, one float per key).

    Keys whose allowance is full again are forgotten when the table grows past `max_keys`, and the table never
    holds more than `max_keys`: a flood of new addresses costs memory in proportion to the bound, not the flood.
    """

    def __init__(self, rate: Rate, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.rate = rate
        self._interval = rate.period / rate.count
        self._clock = clock
        self._max_keys = max_keys
        self._due: dict[object, float] = {}  # key -> the time its allowance is full again

    def __len__(self) -> int:
        return len(self._due)

    def acquire(self, key: object) -> float:
        """0.0 when the request may go on (and is counted), else the seconds to wait before the next one."""
        now = self._clock()
        due = max(self._due.get(key, now), now) + self._interval
        if due - now > self.rate.period + 1e-9:
            return due - now - self.rate.period
        self._due[key] = due
        if len(self._due) > self._max_keys:
            self._prune(now)
        return 0.0

    def _prune(self, now: float) -> None:
        self._due = {k: due for k, due in self._due.items() if due > now}
        # Still too many clients with a partial allowance: the oldest entries go (they get a fresh allowance).
        excess = len(self._due) - self._max_keys * 9 // 10
        if excess > 0:
            for key in list(self._due)[:excess]:
                del self._due[key]


# -- the middleware ---------------------------------------------------------------------------------------------


class Limits:
    """Refuses requests beyond `max_concurrent` in flight, and beyond a client's `rate`, with 429.

    The front door (api/front_door.py), which every request passes, checks and counts the requests in flight
    (`busy`, `active`); as ASGI middleware around the routes, this checks the rate, when one is configured. A
    client is its API key when the server checks keys (the key check runs first, so it is a valid one); otherwise
    its address: a key the server does not check is the client's to change at will.
    """

    def __init__(self, app: ASGIApp, *, max_concurrent: int | None, rate: Rate | None = None,
                 key_by_api_key: bool = False, shared_rate: SharedRateLimiter | None = None) -> None:
        self.app = app
        self.max_concurrent = max_concurrent or 0
        # Counted across instances (--state); it falls back to its own in-process limiter.
        self.rate = shared_rate.local if shared_rate is not None else RateLimiter(rate) if rate else None
        self.shared_rate = shared_rate
        self.key_by_api_key = key_by_api_key
        self.active = 0

    def busy(self) -> errors.APIError | None:
        """The refusal of a request beyond `max_concurrent` in flight, or None."""
        if self.max_concurrent and self.active >= self.max_concurrent:
            error = refuse("concurrency", 429, f"The server is busy: {self.max_concurrent} requests are in "
                           "progress. Try again shortly.")
            error.headers = {"Retry-After": "1"}
            return error
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.rate is not None and scope["type"] == "http" and scope["path"] not in UNLIMITED_PATHS:
            if self.shared_rate is not None:
                wait = await self.shared_rate.acquire(self._client(scope))
            else:
                wait = self.rate.acquire(self._client(scope))
            if wait:
                error = refuse("rate_limit", 429, f"Rate limit reached: at most {self.rate.rate} requests per "
                               f"client. Try again in {math.ceil(wait)} s.")
                await self._refuse(scope, receive, send, error, wait)
                return
        await self.app(scope, receive, send)

    def _client(self, scope: Scope) -> object:
        if self.key_by_api_key:
            for name, value in scope["headers"]:
                if name == b"authorization" or name == b"x-api-key":
                    return value.removeprefix(b"Bearer ").strip()
        client = scope.get("client")
        return client[0] if client else None

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, error: errors.APIError, wait: float) -> None:
        error.headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        await errors.error_for_path(scope["path"], error, scope["method"])(scope, receive, send)
