"""The limits gateways use, kept in Redis for producers (``keys.LIMITS``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from notify import keys
from notify.redis.eventlog import translated

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
