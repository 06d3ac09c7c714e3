"""Per-client rate limits counted in Redis, so `--rate-limit 60/minute` holds across every instance.

The same algorithm as in process (`limits.RateLimiter`: GCRA, one number per client, bursts up to the whole
allowance), run as one Lua script on Redis's clock, so the check and the count are one atomic step however many
instances ask at once. The key (`PREFIX:rate:-:DIGEST`) is a hash of the client (its address, or its API key when
the server checks keys): no key or address is stored. It expires when the client's allowance is full again.
When Redis is unavailable, the in-process limiter counts instead (per instance, until Redis is back).
"""

from __future__ import annotations

from persona_server.limits import Rate, RateLimiter
from persona_server.state.redis_store import UNAVAILABLE, RedisStore

# Returns 0 when the request may go on (and counts it), else the seconds to wait, as a string (Lua numbers
# become integers on the way out).
ACQUIRE = """
local interval, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local due = tonumber(redis.call('GET', KEYS[1]) or now)
if due < now then due = now end
due = due + interval
if due - now > period + 1e-9 then
    return tostring(due - now - period)
end
redis.call('SET', KEYS[1], string.format('%.6f', due), 'PX', math.ceil((due - now) * 1000))
return '0'
"""


class SharedRateLimiter:
    """`RateLimiter`'s interface, asynchronous, counted in Redis; `local` counts while Redis is unavailable."""

    def __init__(self, store: RedisStore, rate: Rate) -> None:
        self.store = store
        self.rate = rate
        self.local = RateLimiter(rate)
        self._args = [repr(rate.period / rate.count), repr(rate.period)]
        self._acquire = store.script(ACQUIRE)

    async def acquire(self, client: object) -> float:
        """0.0 when the request may go on (and is counted), else the seconds to wait before the next one."""
        key = self.store.key("rate", "-", self.store.digest(repr(client)))
        wait = await self.store.run(lambda: self._acquire(keys=[key], args=self._args))
        if wait is UNAVAILABLE:
            return self.local.acquire(client)
        return float(wait)
