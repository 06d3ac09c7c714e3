"""Conversation memory kept in Redis: what `memory.ConversationMemory` keeps in process, shared by instances.

A conversation is one Redis list (`PREFIX:memory:PERSONA:DIGEST`), one element per question/answer pair. Each
exchange is appended by one Lua script, so it is atomic: two instances answering one user at once both append,
neither overwrites the other. The script enforces the persona's bounds in Redis itself: `turns` (LTRIM), the
conversation's `max_bytes` (oldest pairs dropped), its `ttl` (PEXPIRE, renewed on every use, as in process) and
`conversations` (a sorted set of conversations by last use; the least recently used beyond the bound are
deleted). The total over all conversations (`total_bytes`) is bounded by `conversations x max_bytes`, and by
the Redis server's own `maxmemory` (see README, "Scaling").

The in-process memory is kept too, and used whenever Redis is unavailable (see `redis_store`) or has nothing for
the conversation (restarted empty): a request is then answered with what this instance remembers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable

from persona_server.memory import (
    ConversationMemory,
    Hooks,
    MemorySettings,
    Pair,
    bounded_pair,
    history_pairs,
    with_pairs,
)
from persona_server.query import Query
from persona_server.state.redis_store import TOUCH_AND_EVICT, UNAVAILABLE, RedisStore

# A pair is stored as b"<bytes of the question>:" + question + answer (UTF-8): the script can count the bytes
# of questions and answers (what `max_bytes` bounds) without decoding anything.
REMEMBER = """
local turns, max_bytes, ttl, capacity = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
    tonumber(ARGV[5])
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -turns, -1)
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local sizes, total = {}, 0
for i, item in ipairs(items) do
    sizes[i] = #item - string.find(item, ':', 1, true)
    total = total + sizes[i]
end
local i = 1
while total > max_bytes and i < #items do
    redis.call('LPOP', KEYS[1])
    total = total - sizes[i]
    i = i + 1
end
""" + TOUCH_AND_EVICT + """return #items - i + 1
"""

# Reading a conversation is a use of it: its TTL and its place in the LRU order are renewed, as in process.
RECALL = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
if #items > 0 then
    local ttl = tonumber(ARGV[1])
    redis.call('PEXPIRE', KEYS[1], ttl)
    local t = redis.call('TIME')
    redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), KEYS[1])
    redis.call('PEXPIRE', KEYS[2], ttl)
end
return items
"""


def encode_pair(question: str, answer: str) -> bytes:
    q = question.encode()
    return b"%d:%b%b" % (len(q), q, answer.encode())


def decode_pair(item: bytes) -> Pair:
    length, _, rest = item.partition(b":")
    size = int(length)
    return rest[:size].decode(), rest[size:].decode()


class SharedMemory:
    """A persona's conversation memory in Redis, with its in-process memory as the fallback."""

    def __init__(self, store: RedisStore, persona: str, settings: MemorySettings) -> None:
        self.store = store
        self.persona = persona
        self.settings = settings
        self.local = ConversationMemory(settings)
        self._index = store.key("memory-index", persona)
        self._remember = store.script(REMEMBER)
        self._recall = store.script(RECALL)
        self._ttl_ms = max(1, int(settings.ttl * 1000))

    def __len__(self) -> int:
        return len(self.local)

    def adopt(self, other: SharedMemory | ConversationMemory) -> None:
        self.local.adopt(other.local if isinstance(other, SharedMemory) else other)

    def _key(self, conversation: str) -> str:
        return self.store.key("memory", self.persona, self.store.digest(conversation))

    async def recall(self, conversation: str) -> list[Pair] | None:
        """The pairs Redis remembers for a conversation (oldest first), or None when Redis is unavailable."""
        key = self._key(conversation)
        items = await self.store.run(lambda: self._recall(keys=[key, self._index], args=[self._ttl_ms]))
        if items is UNAVAILABLE:
            return None
        return [decode_pair(item) for item in items]

    async def remember(self, conversation: str, question: str, answer: str) -> bool:
        """Append one exchange; False when Redis is unavailable (this process still remembers it)."""
        settings = self.settings
        item = encode_pair(*bounded_pair(question, answer, settings.max_bytes))
        key = self._key(conversation)
        args = [item, settings.turns, settings.max_bytes, self._ttl_ms, settings.conversations]
        done = await self.store.run(lambda: self._remember(keys=[key, self._index], args=args))
        return done is not UNAVAILABLE

    def hooks(self, query: Query) -> Hooks:
        """As `ConversationMemory.hooks`, with the recall awaited before the first turn and the exchange written
        to Redis before the answer's stream ends (so the user's next request, on any instance, sees it)."""
        key = ConversationMemory.key(query)
        if key is None:
            return Hooks(self.local.prepare(query))
        question = query.question

        def on_complete(answer: str) -> Awaitable[None] | None:
            if not (question.strip() and answer.strip()):
                return None
            self.local.remember(key, question, answer)
            return self._write(key, question, answer)

        own = history_pairs(query.history)
        if own:  # a request that carries its own history keeps it (see memory.py): nothing to recall
            return Hooks(dataclasses.replace(query, memory=own[-self.settings.turns:]), on_complete=on_complete)

        async def prepare(query: Query) -> Query:
            remembered = await self.recall(key)
            if not remembered:  # Redis unavailable, or restarted empty: what this process remembers
                return self.local.prepare(query)
            return with_pairs(query, remembered)

        return Hooks(query, prepare=prepare, on_complete=on_complete)

    async def _write(self, key: str, question: str, answer: str) -> None:
        await self.remember(key, question, answer)
