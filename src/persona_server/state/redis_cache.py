"""The look-up answer cache in Redis: what one instance looked up, every instance answers from.

It backs a look-up solver's in-process `AnswerCache` (solvers/lookup.py): a miss there asks Redis before the web
service, a result fetched is stored in both, with the solver's `cache_ttl` (PX: Redis expires it). The key is
`PREFIX:cache:PERSONA:SOLVER:DIGEST`, the digest a hash of the solver's cache key (the question's terms), so no
question is a key name. Failures are never cached (as in process); a value larger than `MAX_VALUE_BYTES` is
kept in process only. A Redis that is unavailable is skipped: the look-up goes to the service.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import orjson

from persona_server.query import Answer, Source
from persona_server.state.redis_store import UNAVAILABLE, RedisStore

MAX_VALUE_BYTES = 256 * 1024


def encode(value: Any) -> bytes | None:
    """A cached value as JSON (an Answer, None, or a JSON document), or None when it is not one of those."""
    if value is None:
        return b'{"none":true}'
    if isinstance(value, Answer):
        return orjson.dumps({"answer": {"text": value.text, "solver": value.solver,
                                        "sources": [[s.title, s.url] for s in value.sources],
                                        "finish_reason": value.finish_reason}})
    try:
        return orjson.dumps({"json": value})
    except TypeError:
        return None


def decode(data: bytes) -> Any:
    """The value `encode` stored. Raises ValueError for anything else."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ValueError("not a cached value") from None
    if not isinstance(doc, dict):
        raise ValueError("not a cached value")
    if doc.get("none") is True:
        return None
    if "json" in doc:
        return doc["json"]
    answer = doc.get("answer")
    if isinstance(answer, dict) and isinstance(answer.get("text"), str):
        return Answer(text=answer["text"], solver=answer.get("solver"),
                      sources=[Source(str(title), str(url)) for title, url in answer.get("sources") or []],
                      finish_reason=str(answer.get("finish_reason") or "stop"))
    raise ValueError("not a cached value")


class SharedCache:
    """One look-up solver's answers of one persona, in Redis."""

    def __init__(self, store: RedisStore, persona: str, solver: str) -> None:
        self.store = store
        self._prefix = store.key("cache", f"{persona}:{solver}")

    def _key(self, key: Hashable) -> str:
        return f"{self._prefix}:{self.store.digest(repr(key))}"

    async def get(self, key: Hashable) -> tuple[bool, Any, float]:
        """(found, value, seconds it has left); not found when Redis is unavailable."""
        name = self._key(key)

        async def read() -> Any:
            async with self.store.client.pipeline(transaction=False) as pipe:
                pipe.get(name)
                pipe.pttl(name)
                return await pipe.execute()

        reply = await self.store.run(read)
        if reply is UNAVAILABLE or reply[0] is None:
            return False, None, 0.0
        try:
            value = decode(reply[0])
        except ValueError:
            return False, None, 0.0
        return True, value, max(0.001, reply[1] / 1000) if reply[1] > 0 else 0.0

    async def put(self, key: Hashable, value: Any, ttl: float) -> bool:
        data = encode(value)
        if data is None or len(data) > MAX_VALUE_BYTES or ttl <= 0:
            return False
        name = self._key(key)
        done = await self.store.run(lambda: self.store.client.set(name, data, px=max(1, int(ttl * 1000))))
        return done is not UNAVAILABLE
