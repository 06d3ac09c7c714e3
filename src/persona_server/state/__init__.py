"""Where per-user state lives: in this process (the default), or in Redis shared by every instance (`--state`).

The state of a server is: each persona's conversation memory (`memory.py`), the per-user variables of its
RiveScript and AIML solvers, the look-up answer cache of its web solvers, and the per-client rate-limit counts.
`State` hands each of them its store:

- `InProcessState` (no `--state`): the stores that always existed, in process, bounded, nothing written anywhere;
  the solvers keep their own session tables. With `--workers N` each worker has its own.
- `RedisState` (`--state redis://HOST:PORT/DB`, also `rediss://` and `unix://`): the same state, with the same
  bounds and TTLs, in Redis (or Valkey, or anything speaking its protocol), through one connection pool. Each
  store keeps its in-process counterpart and falls back to it while Redis is unavailable (see `redis_store`).

Nothing else knows which one is in use: a persona asks for `memory(...)`, a solver for `variables(...)` or
`cache(...)` (None: keep your own), the rate limiter for `rate_limiter(...)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from persona_server.memory import ConversationMemory, MemorySettings
from persona_server.state.redis_store import DEFAULT_PREFIX, DEFAULT_TIMEOUT, EXTRA_HINT, StateError

if TYPE_CHECKING:
    from persona_server.limits import Rate
    from persona_server.state.redis_cache import SharedCache
    from persona_server.state.redis_memory import SharedMemory
    from persona_server.state.redis_rate import SharedRateLimiter
    from persona_server.state.redis_store import RedisStore
    from persona_server.state.redis_variables import SharedVariables

__all__ = ["DEFAULT_PREFIX", "DEFAULT_TIMEOUT", "EXTRA_HINT", "InProcessState", "RedisState", "State",
           "StateError", "open_state"]

SCHEMES = ("redis", "rediss", "unix")


class State:
    """The interface; also the in-process behaviour, which needs no server."""

    backend = "process"

    def memory(self, persona: str, settings: MemorySettings) -> ConversationMemory | SharedMemory:
        return ConversationMemory(settings)

    def variables(self, persona: str, solver: str, *, capacity: int) -> SharedVariables | None:
        """A shared table of a solver's per-user variables, or None: the solver keeps them in process."""
        return None

    def cache(self, persona: str, solver: str) -> SharedCache | None:
        """A shared look-up cache behind the solver's own, or None."""
        return None

    def rate_limiter(self, rate: Rate) -> SharedRateLimiter | None:
        """A shared rate limiter, or None: the in-process one counts."""
        return None

    @property
    def degraded(self) -> bool:
        return False

    def health(self) -> dict[str, Any]:
        return {"backend": self.backend}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


class InProcessState(State):
    pass


class RedisState(State):
    backend = "redis"

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def memory(self, persona: str, settings: MemorySettings) -> SharedMemory:
        from persona_server.state.redis_memory import SharedMemory

        return SharedMemory(self.store, persona, settings)

    def variables(self, persona: str, solver: str, *, capacity: int) -> SharedVariables:
        from persona_server.state.redis_variables import SharedVariables

        return SharedVariables(self.store, solver, persona, capacity=capacity)

    def cache(self, persona: str, solver: str) -> SharedCache:
        from persona_server.state.redis_cache import SharedCache

        return SharedCache(self.store, persona, solver)

    def rate_limiter(self, rate: Rate) -> SharedRateLimiter:
        from persona_server.state.redis_rate import SharedRateLimiter

        return SharedRateLimiter(self.store, rate)

    @property
    def degraded(self) -> bool:
        return not self.store.up

    def health(self) -> dict[str, Any]:
        return self.store.health()

    async def start(self) -> None:
        await self.store.start()

    async def close(self) -> None:
        await self.store.close()


def open_state(url: str | None, *, prefix: str = DEFAULT_PREFIX, timeout: float = DEFAULT_TIMEOUT) -> State:
    """The state `--state URL` names (no URL: in process). Raises StateError for an unusable URL."""
    if not url:
        return InProcessState()
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        # Only the scheme is quoted: the rest of the URL may hold a password.
        raise StateError("--state must be a redis://HOST:PORT/DB URL (or rediss://, unix://)"
                         + (f", not {scheme}://..." if scheme else ""))
    if not prefix or any(c.isspace() for c in prefix):
        raise StateError("--state-prefix must be a non-empty name without spaces")
    if not timeout > 0:
        raise StateError("--state-timeout must be a number of seconds above 0")
    from persona_server.state.redis_store import RedisStore

    return RedisState(RedisStore(url, prefix=prefix, timeout=timeout))
