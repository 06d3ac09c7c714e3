"""The Redis connection every shared store uses: one pool, a deadline per operation, and a circuit breaker.

Every operation goes through `RedisStore.run`, which either returns Redis's reply or `UNAVAILABLE`: a request
never fails, and never waits more than `timeout` seconds, because Redis is down or slow. The first failure opens
the breaker: for the next few seconds (until a background ping succeeds) every operation returns `UNAVAILABLE` at
once, so a dead Redis costs a request nothing. The outage is logged once when it starts and once when it ends;
`/health` reports it as `degraded`.

Key names are `PREFIX:KIND:PERSONA:DIGEST`: the digest is a hash of the user (or of the cached question), so no
user id, API key or address is ever a key name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlsplit

from persona_server import secrets

log = logging.getLogger("persona_server.state")

EXTRA_HINT = "pip install 'persona-server[redis]'"
DEFAULT_PREFIX = "persona-server"
DEFAULT_TIMEOUT = 0.25
# Seconds between pings while Redis is down (recovery is noticed within this), and while it is up (so /health
# notices an outage even when no request has touched Redis).
PROBE_INTERVAL = 1.0
MAX_CONNECTIONS = 128


class _Unavailable:
    """The reply of an operation Redis could not serve in time (see the module docstring)."""

    def __repr__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE: Final = _Unavailable()


class StateError(Exception):
    """A `--state` value that cannot be used (unknown scheme, the redis package missing)."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no reply in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def redacted_url(url: str) -> str:
    """The URL without its password (which may be in it: redis://:PASSWORD@host)."""
    parts = urlsplit(url)
    try:
        if parts.password is None:
            return url
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a malformed port: nothing of it is worth showing
        return f"{parts.scheme}://..."
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=f"{user}{host}{port}").geturl()


class RedisStore:
    """One Redis server (or anything speaking its protocol: Valkey, KeyDB...) shared by every instance."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = DEFAULT_TIMEOUT) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError:
            raise StateError(f"--state {redacted_url(url)} needs the redis package: {EXTRA_HINT}") from None
        self.url = redacted_url(url)
        parts = urlsplit(url)
        if parts.password:
            secrets.register(parts.password)
        self.prefix = prefix
        self.timeout = timeout
        self._salt = f"{prefix}\0".encode()
        try:
            # A blocking pool: a burst beyond MAX_CONNECTIONS waits (within the timeout) for a connection instead
            # of failing at once, which would open the breaker on a healthy Redis.
            pool = aioredis.BlockingConnectionPool.from_url(
                url, max_connections=MAX_CONNECTIONS, timeout=timeout, socket_timeout=timeout,
                socket_connect_timeout=timeout, health_check_interval=0, retry_on_timeout=False,
            )
            self.client = aioredis.Redis(connection_pool=pool)
        except ValueError as exc:
            raise StateError(f"--state: {secrets.redact(str(exc))}") from None
        self.up = True
        self.error: str | None = None
        self.down_since: float | None = None
        self.outages = 0
        self._probe: asyncio.Task[None] | None = None
        self._scripts: dict[str, Any] = {}

    # -- naming ---------------------------------------------------------------------------------------------

    def digest(self, text: str) -> str:
        """A hash of a user id (or a cache key): the same on every instance of a deployment, never the text."""
        return hashlib.blake2b(text.encode(), key=self._salt[:64], digest_size=16).hexdigest()

    def key(self, kind: str, persona: str, digest: str = "") -> str:
        return f"{self.prefix}:{kind}:{persona}:{digest}" if digest else f"{self.prefix}:{kind}:{persona}"

    def script(self, source: str) -> Any:
        """A registered Lua script (EVALSHA, loaded again by redis-py when the server lost it)."""
        registered = self._scripts.get(source)
        if registered is None:
            registered = self._scripts[source] = self.client.register_script(source)
        return registered

    # -- running operations ---------------------------------------------------------------------------------

    async def run(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        """`await operation()` within the timeout, or UNAVAILABLE (at once while the breaker is open)."""
        if not self.up:
            return UNAVAILABLE
        try:
            async with asyncio.timeout(self.timeout):
                return await operation()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._down(exc)
            return UNAVAILABLE

    def _down(self, exc: BaseException) -> None:
        self.error = secrets.redact(_describe(exc))
        if self.up:
            self.up = False
            self.down_since = time.monotonic()
            self.outages += 1
            log.warning("shared state: Redis at %s is unavailable (%s); serving from this process's memory "
                        "until it is back", self.url, self.error)

    def _recovered(self) -> None:
        if not self.up:
            outage = time.monotonic() - (self.down_since or time.monotonic())
            log.warning("shared state: Redis at %s is back after %.1f s; sharing resumes", self.url, outage)
        self.up, self.error, self.down_since = True, None, None

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                await self.client.ping()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._down(exc)
            return False
        self._recovered()
        return True

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._probe is None:
            self._probe = asyncio.create_task(self._watch(), name="shared state probe")

    async def _watch(self) -> None:
        while True:
            await self.ping()
            await asyncio.sleep(PROBE_INTERVAL)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        with contextlib.suppress(Exception):
            await self.client.aclose()

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": "redis", "url": self.url, "prefix": self.prefix,
                               "status": "ok" if self.up else "unavailable"}
        if not self.up:
            out["error"] = self.error
            out["down_for"] = round(time.monotonic() - (self.down_since or time.monotonic()), 1)
        return out


# The end of a script that wrote KEYS[1]: its TTL (`ttl`, ms) renewed, its place in the index KEYS[2] of keys by
# last use renewed, keys unused for a TTL dropped from the index, and the least recently used beyond `capacity`
# deleted (as the in-process LRUs do). Shared by the memory and the variables scripts.
TOUCH_AND_EVICT = """redis.call('PEXPIRE', KEYS[1], ttl)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now, KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
local excess = redis.call('ZCARD', KEYS[2]) - capacity
if excess > 0 then
    local oldest = redis.call('ZPOPMIN', KEYS[2], excess)
    for j = 1, #oldest, 2 do redis.call('DEL', oldest[j]) end
end
redis.call('PEXPIRE', KEYS[2], ttl)
"""
