"""The gateways' limits in Redis: those they advertise to producers (``keys.LIMITS``) and
the counters behind their rate limits (notify.api.limits), which every gateway process
shares, so a limit holds however many gateways a client spreads its requests over."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from notify import keys
from notify.redis import scripts
from notify.redis.errors import translated

FIELDS = ("history_seconds", "history_max_events", "channel_history_max_events", "max_event_bytes")


def parse(raw: Mapping[Any, Any]) -> dict[str, int]:
    """The known fields of the hash that hold positive integers; anything else is left
    out (so the producer falls back to its defaults for it)."""
    out: dict[str, int] = {}
    for name in FIELDS:
        value = raw.get(name.encode(), raw.get(name))
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        if isinstance(value, str) and value.isdigit() and int(value) > 0:
            out[name] = int(value)
    return out


async def advertise(client: aioredis.Redis, limits: Mapping[str, int]) -> None:
    with translated():
        await client.hset(keys.LIMITS, mapping={k: str(limits[k]) for k in FIELDS})


async def read(client: aioredis.Redis) -> dict[str, int]:
    with translated():
        return parse(await client.hgetall(keys.LIMITS))


class LimitStore:
    """Publish budgets per subject, open-stream leases per subject and failed
    authentications per address.

    Each method calls ``translated`` itself rather than through ``translating``: ``take``
    runs on every publish when a rate is set, where one more coroutine frame counts.
    Stream leases are scored by the gateways' clocks (a lease lasts
    ``NOTIFY_STREAM_LEASE_SECONDS``, a minute by default, far longer than clocks
    disagree); the other counters run on the Redis clock."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._bucket = redis.register_script(scripts.source("publish_rate"))
        self._lease = redis.register_script(scripts.source("stream_lease"))
        self._auth_failure = redis.register_script(scripts.source("auth_failure"))

    async def take(self, subject: str, n: int, *, rate: float, burst: float) -> tuple[bool, float]:
        """Take ``n`` events from the subject's budget (``rate`` a second, at most
        ``burst`` saved up): whether they were taken, else the seconds until they would be."""
        with translated():
            res: Any = await self._bucket(keys=[keys.publish_rate(subject)], args=[rate, burst, n])
        return bool(int(res[0])), float(res[1])

    async def lease_stream(
        self, subject: str, stream_id: str, *, limit: int, lease_s: float
    ) -> bool:
        """Lease (or renew) a stream of the subject for ``lease_s``; False when the
        subject already holds ``limit`` unexpired leases."""
        with translated():
            ok: Any = await self._lease(
                keys=[keys.open_streams(subject)], args=[time.time(), stream_id, limit, lease_s]
            )
        return bool(int(ok))

    async def release_stream(self, subject: str, stream_id: str) -> None:
        with translated():
            await self._redis.zrem(keys.open_streams(subject), stream_id)

    async def renew_streams(self, leases: Sequence[tuple[str, str]], lease_s: float) -> None:
        """Extend the given (subject, stream id) leases that still exist by ``lease_s``."""
        until = time.time() + lease_s
        with translated():
            pipe = self._redis.pipeline(transaction=False)
            for subject in {subject for subject, _ in leases}:
                # the set outlives its newest lease, as when a stream opens (the script)
                pipe.expire(keys.open_streams(subject), math.ceil(lease_s) + 1)
            for subject, stream_id in leases:
                pipe.zadd(keys.open_streams(subject), {stream_id: until}, xx=True)
            await pipe.execute()

    async def auth_failed(self, address: str) -> tuple[int, int]:
        """Count a failed authentication from ``address``: the failures of its current
        minute, and the seconds until that minute ends."""
        with translated():
            res: Any = await self._auth_failure(keys=[keys.auth_failures(address)], args=[])
        return int(res[0]), int(res[1])
