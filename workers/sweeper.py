"""The due-set sweeper, run in every dispatcher process.

It re-enqueues retries when they fall due, and deliveries whose task was lost or whose
worker died once their lease has lapsed (a claim's lease lapses within a heartbeat TTL
of its worker's death). The claim script hands each due id to one sweeper only, so any
number may run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from notify.redis.client import Client
from notify.redis.ledger import Ledger
from notify.settings import Settings

SWEEP_COUNT = 1000
Enqueue = Callable[[Sequence[str]], Awaitable[int]]


class Sweeper:
    def __init__(self, settings: Settings, redis: Client, enqueue: Enqueue) -> None:
        self._enqueue = enqueue
        self._interval = settings.sweep_interval_seconds
        self._ledger = Ledger(
            redis,
            lease_s=settings.delivery_lease_seconds,
            retention_s=settings.delivery_retention_seconds,
        )

    async def step(self) -> int:
        ids = await self._ledger.sweep(SWEEP_COUNT)
        if ids:
            await self._enqueue(ids)
        if len(ids) < SWEEP_COUNT:
            await asyncio.sleep(self._interval)
        return len(ids)
