"""The due-set sweeper, run in every dispatcher process.

It re-enqueues retries when they fall due, deliveries whose worker died once their
reservation or claim has lapsed (within a heartbeat TTL of its death), and deliveries
whose task was lost on its way to a worker once the broker has handed out what was sent
after it or has nothing left queued (notify/redis/lua/delivery_sweep.lua). The sweep
script hands each due id to one sweeper only, so any number may run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from notify import keys
from notify.redis.client import Client
from notify.redis.ledger import Ledger
from notify.settings import Settings
from notify.workers.celery_app import QUEUE

SWEEP_COUNT = 1000
Enqueue = Callable[[Sequence[str]], Awaitable[int]]


class Sweeper:
    def __init__(self, settings: Settings, redis: Client, enqueue: Enqueue) -> None:
        self._enqueue = enqueue
        self._interval = settings.sweep_interval_seconds
        # a Redis broker's queue, in the same Redis (RabbitMQ hands back a dead
        # consumer's tasks itself)
        self._queue = None if settings.broker_url else keys.CELERY_PREFIX + QUEUE
        self._ledger = Ledger(
            redis,
            lease_s=settings.delivery_lease_seconds,
            retention_s=settings.delivery_retention_seconds,
            hold_s=settings.heartbeat_seconds,
        )

    async def step(self) -> int:
        ids, due = await self._ledger.sweep(SWEEP_COUNT, self._queue)
        if ids:
            await self._enqueue(ids)
        if due < SWEEP_COUNT:
            await asyncio.sleep(self._interval)
        return len(ids)
