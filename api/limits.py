"""Rate limits kept in Redis, so they hold across every gateway process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis

from notify import keys
from notify.errors import RateLimited, StoreUnavailable
from notify.redis.eventlog import translated

# token bucket: `rate` tokens a second, holding at most `burst`. A take of more than
# the burst (a big batch) needs a full bucket and leaves it in debt, so it can pass at
# all (it never could otherwise, whatever Retry-After said) and the average rate still
# holds: the debt is paid before anything else passes.
BUCKET_LUA = """
local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1]) or burst
local ts = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local need = math.min(n, burst)
if tokens < need then
  return {0, tostring((need - tokens) / rate)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - n), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens + n) / rate * 1000) + 1000)
return {1, '0'}
"""


# open a stream unless the subject already holds `limit` unexpired leases
STREAM_LEASE_LUA = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) == false
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[4])) + 1)
return 1
"""

STREAM_LEASE_SECONDS = 60.0
"""A gateway renews its streams' leases well within this; a dead one's lapse."""

# failed authentications per address and minute; returns the count so far
AUTH_FAILURE_LUA = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 60) end
return {n, redis.call('TTL', KEYS[1])}
"""


class RateLimiter:
    def __init__(
        self,
        client: aioredis.Redis,
        publish_rate: float | None,
        max_streams: int | None = None,
        auth_failures_per_minute: int = 60,
    ) -> None:
        self._redis = client
        self._rate = publish_rate
        self._script = client.register_script(BUCKET_LUA)
        self._max_streams = max_streams
        self._lease = client.register_script(STREAM_LEASE_LUA)
        self._auth_limit = auth_failures_per_minute
        self._auth_failure = client.register_script(AUTH_FAILURE_LUA)
        self._blocked: dict[str, float] = {}
        """Addresses over the failure limit, until when (learnt from Redis, so every
        gateway counts the same failures; kept here so blocked clients cost nothing)."""

    # --- concurrent streams --------------------------------------------------

    async def open_stream(self, subject: str, stream_id: str) -> None:
        if self._max_streams is None:
            return
        with translated():
            ok: Any = await self._lease(
                keys=[keys.open_streams(subject)],
                args=[time.time(), stream_id, self._max_streams, STREAM_LEASE_SECONDS],
            )
        if not int(ok):
            raise RateLimited(
                f"at most {self._max_streams} streams may be open per subject",
                retry_after=5.0,
            )

    async def close_stream(self, subject: str, stream_id: str) -> None:
        if self._max_streams is None:
            return
        with contextlib.suppress(StoreUnavailable), translated():
            await self._redis.zrem(keys.open_streams(subject), stream_id)

    async def renew_streams(self, leases: list[tuple[str, str]]) -> None:
        """Extend the leases of this gateway's open streams ((subject, id) pairs)."""
        if self._max_streams is None or not leases:
            return
        until = time.time() + STREAM_LEASE_SECONDS
        with contextlib.suppress(StoreUnavailable), translated():
            pipe = self._redis.pipeline(transaction=False)
            for subject, stream_id in leases:
                pipe.zadd(keys.open_streams(subject), {stream_id: until}, xx=True)
            await pipe.execute()

    # --- failed authentication ------------------------------------------------

    def check_address(self, address: str | None) -> None:
        if address is None:
            return
        until = self._blocked.get(address)
        if until is not None:
            if until > time.monotonic():
                raise RateLimited(
                    "too many failed authentications from this address",
                    retry_after=until - time.monotonic(),
                )
            del self._blocked[address]

    async def auth_failed(self, address: str | None) -> None:
        if address is None:
            return
        with contextlib.suppress(StoreUnavailable), translated():
            res: Any = await self._auth_failure(keys=[keys.auth_failures(address)], args=[])
            count, ttl = int(res[0]), max(1, int(res[1]))
            if count > self._auth_limit:
                if len(self._blocked) > 100_000:
                    self._blocked.clear()
                self._blocked[address] = time.monotonic() + ttl

    async def take_publish(self, subject: str, n: int) -> None:
        if self._rate is None:
            return
        rate = self._rate
        burst = 2 * rate
        with translated():
            ok, wait = await self._take(keys.publish_rate(subject), rate, burst, n)
        if not ok:
            raise RateLimited(f"publish rate limit of {rate:g} events/s exceeded", retry_after=wait)

    async def _take(self, key: str, rate: float, burst: float, n: int) -> tuple[bool, float]:
        res: Any = await self._script(keys=[key], args=[rate, burst, n])
        return bool(int(res[0])), float(res[1])


class FairShare:
    """At most ``limit`` API requests of one client run at once in this process; the
    client's others wait their turn (they are not refused).

    One event loop serves everyone, so a client flooding the API from many connections
    would otherwise have every other client's request queue behind all of its own. With
    its share capped, another client waits behind at most ``limit`` of them.

    A turn ends when the request starts answering (``release``), not when its response
    ends: a stream (``/v1/feed``) answers for hours and is outside the share.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[Callable[[], None]]:
        """Wait for a turn; yields ``release``, which ends the turn early (idempotent)."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = (asyncio.Semaphore(self.limit), [0])
        semaphore, users = slot
        users[0] += 1
        held = False

        def release() -> None:
            nonlocal held
            if held:
                held = False
                semaphore.release()

        try:
            await semaphore.acquire()
            held = True
            yield release
        finally:
            release()
            users[0] -= 1
            if not users[0]:
                del self._slots[key]

    def __len__(self) -> int:
        return len(self._slots)
