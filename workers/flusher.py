"""The digest flusher: closes due digest windows into digest deliveries.

It runs in every dispatcher process beside the sweeper. Flushing is one script per
window that only the first caller wins (notify.redis.digests), so any number may run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from notify.redis.client import Client
from notify.redis.digests import DigestStore
from notify.redis.subscriptions import SubscriptionStore
from notify.settings import Settings

log = logging.getLogger("notify.dispatcher")

FLUSH_COUNT = 200
Enqueue = Callable[[Sequence[str]], Awaitable[int]]


class DigestFlusher:
    def __init__(self, settings: Settings, redis: Client, enqueue: Enqueue) -> None:
        self._enqueue = enqueue
        self._interval = settings.sweep_interval_seconds
        self._subs = SubscriptionStore(redis)
        self._digests = DigestStore(
            redis,
            transit_s=settings.heartbeat_seconds,
            retention_s=settings.delivery_retention_seconds,
        )

    async def step(self) -> int:
        due = await self._digests.due(FLUSH_COUNT)
        created: list[str] = []
        if due:
            subs = await self._subs.get_many(due)
            for sub_id in due:
                sub = subs.get(sub_id)
                if sub is None:
                    await self._digests.drop(sub_id)
                    continue
                opened = await self._digests.opened(sub_id)
                if opened is None:
                    continue  # another flusher was first
                digest, count = await self._digests.flush(sub, opened)
                if count:
                    log.info("digest %s of %s holds %d events", digest, sub_id, count)
                    created.append(digest)
        if created:
            # a crash before this leaves them in the due set: the sweeper sends them
            await self._enqueue(created)
        if len(due) < FLUSH_COUNT:
            await asyncio.sleep(self._interval)
        return len(created)
