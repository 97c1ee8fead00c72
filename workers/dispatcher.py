"""``notify dispatcher``: routes logged events to delivery records and Celery tasks.

Dispatchers read the event log as one Redis consumer group, so any number share the
work and each entry goes to one of them. For each batch: read entries, catch up on
subscription changes (so a subscription created before an event was published is
seen by the time that event is routed), route with the in-memory index, create the
records (create-if-absent under a stable id), enqueue their tasks, and only then
XACK. A dispatcher killed anywhere in between leaves its entries pending in the
group; a live one takes them over with XAUTOCLAIM once they have been idle for
NOTIFY_DISPATCH_CLAIM_IDLE_SECONDS, and the stable ids make the retry harmless.

A fresh deployment creates the group at the start of the retained log (id 0), so
events published before the first dispatcher ever ran are not skipped; they still
reach only subscriptions that existed when they were published.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from notify import keys
from notify.events import with_id
from notify.redis.client import async_client
from notify.redis.eventlog import entry_from
from notify.redis.ledger import Ledger
from notify.redis.subscriptions import SubscriptionStore, text
from notify.routing import Delivery, Router
from notify.settings import Settings
from notify.workers.celery_app import Enqueuer, create_app, new_loop
from notify.workers.flusher import DigestFlusher
from notify.workers.resender import AlertResender
from notify.workers.sweeper import Replayer, Sweeper, backoff_loop

log = logging.getLogger("notify.dispatcher")

READ_COUNT = 500
BLOCK_MS = 1000
RELOAD_SECONDS = 300.0
Enqueue = Callable[[Sequence[str]], Awaitable[int]]
Item = tuple[Delivery, str, str, bytes]


async def ensure_group(redis: aioredis.Redis, stream: str, group: str) -> None:
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        enqueue: Enqueue,
        consumer: str,
    ) -> None:
        self._redis = redis
        self._enqueue = enqueue
        self._consumer = consumer
        self._claim_idle_ms = int(settings.dispatch_claim_idle_seconds * 1000)
        self._subs = SubscriptionStore(redis)
        self._ledger = Ledger(
            redis,
            lease_s=settings.delivery_lease_seconds,
            retention_s=settings.delivery_retention_seconds,
        )
        self.router = Router()
        self._changes = "0-0"
        self._next_reload = 0.0
        self._next_claim = 0.0

    async def reload(self) -> None:
        # the cursor is taken first: a change racing the scan is applied again later
        cursor = await self._subs.changes_head()
        router = Router()
        async for sub in self._subs.all():
            router.put(sub)
        self.router, self._changes = router, cursor
        self._next_reload = time.monotonic() + RELOAD_SECONDS
        log.info("routing %d subscriptions", len(router))

    async def catch_up(self) -> None:
        """Apply every subscription change made so far."""
        if time.monotonic() >= self._next_reload:
            await self.reload()
            return
        while True:
            changes = await self._subs.changes(self._changes, count=1000)
            if not changes:
                return
            self._changes = changes[-1].id
            touched = list(dict.fromkeys(c.subscription for c in changes))
            current = await self._subs.get_many(touched)
            for sub_id in touched:
                sub = current.get(sub_id)
                if sub is None:
                    self.router.remove(sub_id)
                else:
                    self.router.put(sub)

    async def step(self) -> int:
        """One read-route-record-enqueue-ack round; returns the entries handled."""
        entries: list[tuple[Any, Any]] = []
        if time.monotonic() >= self._next_claim:
            entries = await self._claim_stale()
            self._next_claim = time.monotonic() + max(self._claim_idle_ms / 2000, 0.5)
        if not entries:
            reply: Any = await self._redis.xreadgroup(
                keys.DISPATCH_GROUP,
                self._consumer,
                {keys.LOG: ">"},
                count=READ_COUNT,
                block=BLOCK_MS,
            )
            for _, batch in reply or []:
                entries.extend(batch)
        if not entries:
            return 0
        await self.catch_up()
        await self.handle(entries)
        return len(entries)

    async def handle(self, entries: Sequence[tuple[Any, Any]]) -> None:
        items: list[Item] = []
        for raw_id, fields in entries:
            if not fields:
                continue  # trimmed from the log while pending: nothing left to route
            entry = entry_from(raw_id, fields)
            if entry is None:
                continue  # not written by notify: nothing to route
            deliveries = self.router.route(entry.id, entry.channel, entry.type)
            if deliveries:
                envelope = with_id(entry.id, entry.body)
                items += [(d, entry.channel, entry.type, envelope) for d in deliveries]
        ids = await self._ledger.create(items)
        if ids:
            await self._enqueue(ids)
        acked = [raw_id for raw_id, _ in entries if raw_id is not None]
        if acked:
            await self._redis.xack(keys.LOG, keys.DISPATCH_GROUP, *acked)

    async def _claim_stale(self) -> list[tuple[Any, Any]]:
        """Entries a dead dispatcher read but never acknowledged."""
        taken: list[tuple[Any, Any]] = []
        start: Any = "0-0"
        for _ in range(10):
            reply: Any = await self._redis.xautoclaim(
                keys.LOG,
                keys.DISPATCH_GROUP,
                self._consumer,
                self._claim_idle_ms,
                start_id=start,
                count=READ_COUNT,
            )
            start, claimed = reply[0], reply[1]
            taken += [(i, f) for i, f in claimed if i is not None]
            if text(start) == "0-0" or len(taken) >= READ_COUNT:
                break
        if taken:
            log.warning("took over %d entries from a stalled dispatcher", len(taken))
        return taken


DISPATCHER_CLIENT = "notify-dispatcher:"
"""The prefix of the dispatcher's Redis connection names (``CLIENT LIST``), then its
consumer name: how its health check finds it."""


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    app = create_app(settings)
    enqueuer = Enqueuer(app, settings.delivery_batch_size)
    # kombu's producer is blocking and is kept to one thread
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notify-enqueue")

    async def enqueue(ids: Sequence[str]) -> int:
        return await asyncio.get_running_loop().run_in_executor(pool, enqueuer, list(ids))

    # one client for the blocking group reads and the commands between them
    redis = async_client(
        settings.redis_url,
        timeout=settings.redis_timeout_seconds,
        block_seconds=BLOCK_MS / 1000,
        name=DISPATCHER_CLIENT + consumer_name(),
    )
    name = consumer_name()
    dispatcher = Dispatcher(settings, redis, enqueue, name)
    sweeper = Sweeper(settings, redis, enqueue)
    replayer = Replayer(settings, redis, enqueue, name)
    flusher = DigestFlusher(settings, redis, enqueue)
    resender = AlertResender(settings, redis)

    async def prepare() -> None:
        await ensure_group(redis, keys.LOG, keys.DISPATCH_GROUP)
        await ensure_group(redis, keys.REPLAYS, keys.REPLAY_GROUP)
        await dispatcher.reload()

    try:
        await backoff_loop(stop, prepare, "start", once=True)
        log.info("dispatcher %s started", name)
        await asyncio.gather(
            backoff_loop(stop, dispatcher.step, "dispatch"),
            backoff_loop(stop, sweeper.step, "sweep"),
            backoff_loop(stop, replayer.step, "replay"),
            backoff_loop(stop, flusher.step, "digest flush"),
            backoff_loop(stop, resender.step, "alert resend"),
        )
    finally:
        await resender.aclose()
        await redis.aclose()
        pool.shutdown(wait=True)
        app.close()


def run(settings: Settings) -> None:
    """Dispatch until SIGTERM or SIGINT; the current round finishes first."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    # uvloop where installed: most of a dispatcher's time is event-loop and socket work
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(main())


if __name__ == "__main__":
    from notify.settings import load

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(load())
