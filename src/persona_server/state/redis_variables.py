"""Per-user solver variables in Redis: what a RiveScript or AIML session remembers of a user (a name, likes, the
topic), shared by every instance.

One Redis hash per solver, persona and user (`PREFIX:vars-SOLVER:PERSONA:DIGEST`), one field per variable, each
value JSON. A solver loads the hash before its reply and writes back only the variables the reply changed (HSET
of those fields, HDEL of removed ones, in one Lua script that also renews the TTL and the bound on users). Why
per-variable writes rather than WATCH and retry: a reply has side effects (a joke dealt at random) that cannot be
re-run, and two replies of one user on two instances at once almost always change different variables (one sets
`name`, the other the topic); when both change the same one, the later write wins, as it would in one process.

Bounds: `capacity` users per solver and persona (a sorted set by last use; the least recently used beyond it are
deleted, as the solvers' in-process LRU does), a TTL renewed on every write, and at most `MAX_BYTES` per write
(a larger change is not shared; it stays in process). A session's size is bounded by its solver: RiveScript keeps
9 turns of history and lists of at most 12 items, of inputs cut to 500 characters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from persona_server.state.redis_store import TOUCH_AND_EVICT, UNAVAILABLE, RedisStore

if TYPE_CHECKING:
    from persona_server.query import Query

R = TypeVar("R")

# Users are forgotten after this long without a reply (in process they are forgotten only by the LRU bound;
# Redis needs a time too, or an abandoned deployment's keys would stay forever).
DEFAULT_TTL = 7 * 24 * 3600.0
MAX_BYTES = 64 * 1024

SAVE = """
local ttl, capacity, nset = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if nset > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + 2 * nset)) end
if #ARGV > 3 + 2 * nset then redis.call('HDEL', KEYS[1], unpack(ARGV, 4 + 2 * nset)) end
""" + TOUCH_AND_EVICT + """return 1
"""

Variables = dict[str, Any]


def changes(before: Variables, after: Variables) -> tuple[Variables, list[str]]:
    """What a reply changed: the variables set to a new value, and those removed."""
    changed = {key: value for key, value in after.items() if key not in before or before[key] != value}
    return changed, [key for key in before if key not in after]


class SharedVariables:
    """The variables of each user of one solver of one persona."""

    def __init__(self, store: RedisStore, solver: str, persona: str, *, capacity: int,
                 ttl: float = DEFAULT_TTL) -> None:
        self.store = store
        self._kind = f"vars-{solver}"
        self.persona = persona
        self.capacity = capacity
        self._ttl_ms = max(1, int(ttl * 1000))
        self._index = store.key(f"{self._kind}-index", persona)
        self._save = store.script(SAVE)

    def _key(self, user: str) -> str:
        return self.store.key(self._kind, self.persona, self.store.digest(user))

    async def load(self, user: str) -> Variables | None:
        """The user's variables ({} for a user Redis does not know), or None when Redis is unavailable."""
        key = self._key(user)
        fields = await self.store.run(lambda: self.store.client.hgetall(key))
        if fields is UNAVAILABLE:
            return None
        try:
            return {name.decode(): orjson.loads(value) for name, value in fields.items()}
        except (UnicodeDecodeError, orjson.JSONDecodeError):
            return {}  # not ours (a foreign writer under our prefix): start the user afresh

    async def save(self, user: str, changed: Variables, removed: list[str]) -> bool:
        """Write what a reply changed; False when Redis is unavailable or the session is too large to share."""
        encoded = [(name, orjson.dumps(value, default=str)) for name, value in changed.items()]
        if sum(len(name) + len(value) for name, value in encoded) > MAX_BYTES:
            return False
        args: list[Any] = [self._ttl_ms, self.capacity, len(encoded)]
        for name, value in encoded:
            args += [name, value]
        args += removed
        key = self._key(user)
        done = await self.store.run(lambda: self._save(keys=[key, self._index], args=args))
        return done is not UNAVAILABLE

    async def answer(self, query: Query, local: Callable[[Query], Awaitable[R]],
                     solve: Callable[[Query, Variables], tuple[R, Variables, list[str]]],
                     run_blocking: Callable[..., Awaitable[tuple[R, Variables, list[str]]]]) -> R:
        """A solver's reply with the conversation's variables as Redis has them: `solve(query, loaded)` (run by
        `run_blocking`, the solver's threads) gives the reply and what it changed, which is written back. Without
        a conversation, or with Redis unavailable, `local` answers from what this process knows."""
        conversation = query.conversation_id
        if conversation is None:
            return await local(query)
        loaded = await self.load(conversation)
        if loaded is None:
            return await local(query)
        reply, changed, removed = await run_blocking(solve, query, loaded)
        if changed or removed:
            await self.save(conversation, changed, removed)
        return reply
