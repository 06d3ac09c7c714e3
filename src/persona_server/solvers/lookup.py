"""Shared pieces of the look-up solvers (Wikipedia, DuckDuckGo, Wolfram|Alpha); what they read in a question and
how they trim an answer's text is in `lookup_text`.

- `AnswerCache`: a bounded TTL cache of look-up results, with concurrent identical look-ups coalesced.
- `LookupSolver`: the base class: options (`base_url`, `timeout`, `cache_ttl`...), the shared HTTP client with
  explicit timeouts, and the rule that a failing service means "no answer", quickly, never an exception.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import httpx
import orjson
from pydantic import Field, field_validator

from persona_server import USER_AGENT, secrets
from persona_server.query import Answer, Query
from persona_server.solvers.base import Solver, SolverContext, SolverOptions

if TYPE_CHECKING:
    from persona_server.state.redis_cache import SharedCache

log = logging.getLogger(__name__)


# httpx logs every request URL at INFO; Wolfram's appid travels in the query string. The redacting filter
# masks registered secrets, but a URL has no business in an INFO line in the first place.
for _name in ("httpx", "httpcore"):
    if logging.getLogger(_name).level < logging.WARNING:
        logging.getLogger(_name).setLevel(logging.WARNING)

# Seconds during which the same failure of a solver is logged at DEBUG rather than again at WARNING.
WARN_INTERVAL = 60.0

# --------------------------------------------------------------------------------------------------------------
# The answer cache
# --------------------------------------------------------------------------------------------------------------

V = TypeVar("V")


class AnswerCache(Generic[V]):
    """A bounded LRU cache whose entries expire after `ttl` seconds.

    `get_or_fetch` also coalesces concurrent identical look-ups (a speculative start and a second client asking
    the same thing), so the service sees one request. Only definitive results are stored: `fetch` signals a
    failure by raising `LookupFailed`, and failures are never cached.
    """

    def __init__(self, ttl: float, max_entries: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._pending: dict[Hashable, asyncio.Future[V]] = {}
        # Shared with other instances (--state): asked on a miss here, before the service; None: this process.
        self.shared: SharedCache | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> tuple[bool, V | None]:
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if self.clock() >= expires:
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def put(self, key: Hashable, value: V, ttl: float | None = None) -> None:
        if self.ttl <= 0 or self.max_entries <= 0:
            return
        self._entries[key] = (self.clock() + (ttl or self.ttl), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    async def get_or_fetch(self, key: Hashable, fetch: Callable[[], Awaitable[V]]) -> V:
        hit, value = self.get(key)
        if hit:
            return value  # type: ignore[return-value]
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(key, fetch))
            # When every waiter has given up, nobody reads the outcome: mark it read so asyncio stays quiet.
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._pending[key] = pending
        # A waiter that is cancelled (the chain moved on) must not cancel the look-up other waiters share.
        return await asyncio.shield(pending)

    async def _fetch(self, key: Hashable, fetch: Callable[[], Awaitable[V]]) -> V:
        try:
            shared = self.shared if self.ttl > 0 and self.max_entries > 0 else None
            if shared is not None:
                found, value, ttl = await shared.get(key)
                if found:  # another instance looked it up: kept here for what is left of its TTL
                    self.put(key, value, ttl)
                    return value  # type: ignore[no-any-return]
            value = await fetch()
            self.put(key, value)
            if shared is not None:
                await shared.put(key, value, self.ttl)
            return value
        finally:
            self._pending.pop(key, None)


class LookupFailed(Exception):
    """The service could not be asked or gave no usable reply: no answer now, and nothing cached."""


# --------------------------------------------------------------------------------------------------------------
# The base solver
# --------------------------------------------------------------------------------------------------------------


class LookupOptions(SolverOptions):
    base_url: str = Field(default="", description="the service's root URL")
    connect_timeout: float = Field(default=2.0, gt=0, description="seconds to connect (capped by timeout)")
    cache_ttl: float = Field(default=3600.0, ge=0, description="seconds a result is reused; 0 disables")
    cache_size: int = Field(default=1024, ge=0, description="results kept at most")
    user_agent: str = Field(default=USER_AGENT, description="the User-Agent header sent to the service")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value


class LookupSolver(Solver):
    """A solver that asks a web service: never raises for a failing service, answers from a TTL cache."""

    speculative = True
    default_timeout = 5.0
    default_deadline = 10.0
    Options: ClassVar[type[SolverOptions]] = LookupOptions
    options: LookupOptions
    # What the service is called in log lines.
    service: ClassVar[str] = "service"

    def __init__(self, options: SolverOptions, context: SolverContext) -> None:
        super().__init__(options, context)
        self.cache: AnswerCache[Any] = AnswerCache(self.options.cache_ttl, self.options.cache_size)
        if context.state is not None:
            self.cache.shared = context.state.cache(context.persona, self.name)
        self._warned: dict[str, float] = {}

    @property
    def http_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, connect=min(self.options.connect_timeout, self.timeout))

    async def answer(self, query: Query) -> Answer | None:
        try:
            # The solver's own deadline, a little inside the chain's: a service that trickles bytes (each read
            # within the read timeout) still ends here, as "no answer", before the chain has to cut it off.
            async with asyncio.timeout(self.timeout * 0.95):
                return await self.lookup(query)
        except LookupFailed as exc:
            self._warn(str(exc))
        except TimeoutError:
            self._warn(f"no reply within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            self._warn(describe_http_error(exc))
        except Exception as exc:
            # A reply of a shape nobody expected is still only "no answer"; the type, never the message,
            # which could quote the request.
            log.debug("%s: %s look-up failed", self.context.persona, self.service, exc_info=True)
            self._warn(f"unexpected failure ({type(exc).__name__})")
        return None

    async def lookup(self, query: Query) -> Answer | None:
        raise NotImplementedError

    async def cached(self, key: Hashable, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """The result of `fetch` for `key`, reused for `cache_ttl` seconds; failures (exceptions) never are."""
        return await self.cache.get_or_fetch((self.name, *_as_tuple(key)), fetch)

    async def get_json(self, url: str, params: dict[str, str]) -> Any:
        """GET a JSON document. Raises LookupFailed (with a message free of URLs and secrets) on any failure."""
        response = await self.get(url, params)
        if response.status_code != 200:
            raise LookupFailed(f"HTTP {response.status_code}")
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise LookupFailed("the reply is not JSON") from None

    async def get(self, url: str, params: dict[str, str]) -> httpx.Response:
        try:
            return await self.context.http.get(
                url, params=params, timeout=self.http_timeout, headers={"User-Agent": self.options.user_agent}
            )
        except httpx.HTTPError as exc:
            # httpx error messages may quote the request URL, query string (and appid) included.
            raise LookupFailed(describe_http_error(exc)) from None

    def _warn(self, reason: str) -> None:
        # An offline machine fails every question the same way: say so once a minute, not once a question.
        now = time.monotonic()
        level = logging.WARNING
        if now - self._warned.get(reason, -WARN_INTERVAL) < WARN_INTERVAL:
            level = logging.DEBUG
        else:
            self._warned[reason] = now
        log.log(level, "%s: no answer from %s: %s", self.context.persona, self.service, secrets.redact(reason))


def describe_http_error(exc: httpx.HTTPError) -> str:
    """An httpx error in words, without its message (which may quote the request URL)."""
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    return type(exc).__name__


def _as_tuple(key: Hashable) -> tuple[Hashable, ...]:
    return key if isinstance(key, tuple) else (key,)
