"""Loops that run beside the dispatcher: the due-set sweeper and the replayer.

The sweeper runs in every dispatcher process (``notify dispatcher``); its claim
script hands each due id to one sweeper only, so any number may run. It re-enqueues
retries when they fall due and deliveries whose task or worker was lost once their
lease has run out. The replayer serves ``POST /v1/subscriptions/{id}/replay``:
requests are a stream read through a consumer group, so each is done once, and a
replay interrupted by a crash is taken over and redone (its records are reused).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

from notify import keys
from notify.events import is_last_possible, with_id
from notify.redis.errors import refused
from notify.redis.eventlog import entry_from
from notify.redis.ledger import Ledger
from notify.redis.subscriptions import ReplayRequest, SubscriptionStore, replay_from_fields, text
from notify.routing import Delivery, replayed
from notify.settings import Settings

log = logging.getLogger("notify.dispatcher")

SWEEP_COUNT = 1000
REPLAY_PAGE = 1000
REPLAY_MAX_PAGES = 10_000
Enqueue = Callable[[Sequence[str]], Awaitable[int]]


async def backoff_loop(
    stop: asyncio.Event,
    step: Callable[[], Awaitable[object]],
    name: str,
    *,
    once: bool = False,
) -> None:
    """Call ``step`` until ``stop``; on failure wait (0.1 s doubling to 5 s) and go on."""
    delay = 0.1
    while not stop.is_set():
        try:
            await step()
        except Exception as exc:
            log.warning(
                "%s failed (%s: %s); retrying in %.1f s", name, type(exc).__name__, exc, delay
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 5.0)
            continue
        delay = 0.1
        if once:
            return


class Sweeper:
    def __init__(self, settings: Settings, redis: aioredis.Redis, enqueue: Enqueue) -> None:
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


def refused_for_good(exc: Exception) -> bool:
    """A replay request that no retry can carry out: malformed (written to the stream
    by something other than the API), or a command Redis refuses as such (not for
    want of memory, a replica or a loaded data set, which pass)."""
    if isinstance(exc, KeyError | ValueError):
        return True
    return refused(exc)


class Replayer:
    def __init__(
        self, settings: Settings, redis: aioredis.Redis, enqueue: Enqueue, consumer: str
    ) -> None:
        self._redis = redis
        self._enqueue = enqueue
        self._consumer = consumer
        self._idle_ms = int(settings.dispatch_claim_idle_seconds * 1000)
        self._subs = SubscriptionStore(redis)
        self._ledger = Ledger(
            redis,
            lease_s=settings.delivery_lease_seconds,
            retention_s=settings.delivery_retention_seconds,
        )

    async def step(self) -> int:
        reply: Any = await self._redis.xautoclaim(
            keys.REPLAYS, keys.REPLAY_GROUP, self._consumer, self._idle_ms, count=1
        )
        entries = [(i, f) for i, f in reply[1] if i is not None and f]
        if not entries:
            read: Any = await self._redis.xreadgroup(
                keys.REPLAY_GROUP, self._consumer, {keys.REPLAYS: ">"}, count=1, block=1000
            )
            for _, batch in read or []:
                entries += batch
        for raw_id, fields in entries:
            try:
                await self.replay(replay_from_fields(raw_id, fields))
            except Exception as exc:
                if not refused_for_good(exc):
                    raise  # Redis or the broker away: the request waits to be claimed again
                # it would fail the same way on every claim, forever: drop it, loudly
                log.error(
                    "replay request %s dropped: %s: %s", text(raw_id), type(exc).__name__, exc
                )
            await self._redis.xack(keys.REPLAYS, keys.REPLAY_GROUP, raw_id)
        return len(entries)

    async def replay(self, request: ReplayRequest) -> None:
        sub = await self._subs.get(request.subscription)
        if sub is None or is_last_possible(request.after):
            return
        after, total = request.after, 0
        for _ in range(REPLAY_MAX_PAGES):
            rows: Any = await self._redis.xrange(
                keys.LOG, min="(" + after, max=request.until, count=REPLAY_PAGE
            )
            items: list[tuple[Delivery, str, str, bytes]] = []
            for raw_id, fields in rows:
                entry = entry_from(raw_id, fields)
                if entry is None:
                    continue  # not written by notify
                d = replayed(sub, entry.id, entry.channel, entry.type)
                if d is not None:
                    items.append((d, entry.channel, entry.type, with_id(entry.id, entry.body)))
            ids = await self._ledger.create(items, replay=True)
            if ids:
                await self._enqueue(ids)
            total += len(ids)
            if len(rows) < REPLAY_PAGE:
                break
            after = text(rows[-1][0])
            # still ours: a long replay must not look abandoned to other replayers
            await self._redis.xclaim(
                keys.REPLAYS, keys.REPLAY_GROUP, self._consumer, 0, [request.id], justid=True
            )
        log.info("replayed %d events to %s after %s", total, sub.id, request.after)
