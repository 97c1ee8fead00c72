"""Rate limits kept in Redis, so they hold across every gateway process."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from notify import keys
from notify.errors import RateLimited
from notify.redislog import translated

# token bucket: `rate` tokens a second, holding at most `burst`
BUCKET_LUA = """
local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1]) or burst
local ts = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
if tokens < n then
  return {0, tostring((n - tokens) / rate)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - n), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {1, '0'}
"""


class RateLimiter:
    def __init__(self, client: aioredis.Redis, publish_rate: float | None) -> None:
        self._rate = publish_rate
        self._script = client.register_script(BUCKET_LUA)

    async def take_publish(self, subject: str, n: int) -> None:
        if self._rate is None:
            return
        rate = self._rate
        burst = 2 * rate
        if n > burst:
            raise RateLimited(
                f"a batch of {n} events exceeds the burst of {burst:g} allowed per subject",
                retry_after=max(1.0, n / rate),
            )
        with translated():
            ok, wait = await self._take(keys.publish_rate(subject), rate, burst, n)
        if not ok:
            raise RateLimited(f"publish rate limit of {rate:g} events/s exceeded", retry_after=wait)

    async def _take(self, key: str, rate: float, burst: float, n: int) -> tuple[bool, float]:
        res: Any = await self._script(keys=[key], args=[rate, burst, n])
        return bool(int(res[0])), float(res[1])
