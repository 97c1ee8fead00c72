"""``notify dispatcher``: routes logged events to delivery records and Celery tasks.

Dispatchers read the event log as one Redis consumer group (notify.redis.groups), so
any number share the work and each entry goes to one of them. For each batch: read
entries, catch up on subscription changes (so a subscription created before an event
was published is seen by the time that event is routed), route with the in-memory
index, create the records (create-if-absent under a stable id), enqueue their tasks,
and only then XACK. A dispatcher killed anywhere in between leaves its entries pending
in the group; its heartbeat stops, and within the heartbeat's TTL a live dispatcher (or
its replacement) takes them over; the stable ids make the retry harmless.

A fresh deployment creates the group at the start of the retained log (id 0), so
events published before the first dispatcher ever ran are not skipped; they still
reach only subscriptions that existed when they were published. When Redis lost its
data (NOGROUP), the group is created again and the subscriptions read anew.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from notify import keys, tracing
from notify.eventlog import Entry
from notify.events import stored_traceparent, with_id
from notify.redis.client import Client, async_client
from notify.redis.eventlog import entry_from
from notify.redis.groups import GroupReader
from notify.redis.heartbeat import Heartbeat, process_name
from notify.redis.ledger import Ledger
from notify.redis.subscriptions import SubscriptionStore
from notify.routing import Delivery, Router
from notify.settings import Settings
from notify.workers import health
from notify.workers.celery_app import Enqueuer, create_app, new_loop
from notify.workers.flusher import DigestFlusher
from notify.workers.loops import backoff_loop
from notify.workers.replayer import Replayer
from notify.workers.resender import AlertResender
from notify.workers.sweeper import Sweeper

log = logging.getLogger("notify.dispatcher")

READ_COUNT = 500
BLOCK_MS = 1000
RELOAD_SECONDS = 300.0
Enqueue = Callable[[Sequence[str]], Awaitable[int]]
Item = tuple[Delivery, str, str, bytes]


WEDGED_SECONDS = 60.0
"""/healthz fails when the dispatch loop has not gone round for this long (a round
blocks at most BLOCK_MS reading, plus the handling of one batch)."""
READY_SECONDS = 10.0
"""/readyz fails when the dispatch loop has not succeeded for this long."""


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        redis: Client,
        enqueue: Enqueue,
        *readers: GroupReader,
    ) -> None:
        """One reader per shard of the event log (notify.shards), each read by its
        own loop (:meth:`step`) through the same routing index."""
        self._enqueue = enqueue
        self._readers = readers
        self._lost = 0
        self.dispatched = 0
        self._subs = SubscriptionStore(redis)
        self._ledger = Ledger(
            redis,
            lease_s=settings.delivery_lease_seconds,
            retention_s=settings.delivery_retention_seconds,
            hold_s=settings.heartbeat_seconds,
        )
        self.router = Router()
        self._changes = "0-0"
        self._next_reload = 0.0

    @property
    def readers(self) -> tuple[GroupReader, ...]:
        return self._readers

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

    async def step(self, shard: int = 0) -> int:
        """One read-route-record-enqueue-ack round on ``shard``'s log; returns the
        entries handled."""
        reader = self._readers[shard]
        entries = await reader.read(READ_COUNT, BLOCK_MS)
        lost = sum(r.lost for r in self._readers)
        if lost != self._lost:
            # Redis lost its data: the change cursor points past the new change stream
            self._lost = lost
            await self.reload()
        if not entries:
            return 0
        await self.catch_up()
        await self.handle(entries, reader)
        self.dispatched += len(entries)
        return len(entries)

    async def handle(
        self, entries: Sequence[tuple[Any, Any]], reader: GroupReader | None = None
    ) -> None:
        traced_from = time.time_ns() if tracing.ENABLED else 0
        routed: list[tuple[Entry, int]] = []  # for the spans, when tracing
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
            if traced_from:
                routed.append((entry, len(deliveries)))
        ids = await self._ledger.create(items)
        if ids:
            await self._enqueue(ids)
        await (reader or self._readers[0]).ack([i for i, _ in entries if i is not None])
        if traced_from:
            traced_dispatch(routed, traced_from)


def traced_dispatch(routed: Sequence[tuple[Entry, int]], started_ns: int) -> None:
    """A ``notify.dispatch`` span for each routed event that carries a trace, child of
    its stored traceparent, from the start of its batch's routing until its deliveries
    were queued and the batch acknowledged."""
    for entry, deliveries in routed:
        parent = stored_traceparent(entry.body)
        if parent is not None:
            attributes: dict[str, str | int] = {
                "messaging.message.id": entry.id,
                "messaging.destination.name": entry.channel,
                "notify.deliveries": deliveries,
            }
            tracing.record("notify.dispatch", parent, started_ns, "consumer", attributes)


def dispatch_loops(shards: int) -> list[str]:
    """The names of the dispatch loops (one per shard), as health reports them."""
    return ["dispatch"] + [f"dispatch-{i}" for i in range(1, shards)]


DISPATCHER_CLIENT = "notify-dispatcher:"
"""The prefix of the dispatcher's Redis connection names (``CLIENT LIST``), then its
process name: how the container health check (``notify.workers.probe``) finds it."""


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    app = create_app(settings)
    enqueuer = Enqueuer(app, settings.delivery_batch_size)
    # kombu's producer is blocking and is kept to one thread
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notify-enqueue")

    async def enqueue(ids: Sequence[str]) -> int:
        return await asyncio.get_running_loop().run_in_executor(pool, enqueuer, list(ids))

    name = process_name()
    # one client for the blocking group reads and the commands between them
    redis = async_client(
        settings.redis_url,
        timeout=max(settings.redis_timeout_seconds, 10.0),
        block_seconds=BLOCK_MS / 1000,
        name=DISPATCHER_CLIENT + name,
    )
    heartbeat = Heartbeat(redis, name, settings.heartbeat_seconds)
    stale_s = settings.dispatch_claim_idle_seconds
    log_readers = [
        GroupReader(redis, shard.log, keys.DISPATCH_GROUP, name, stale_s=stale_s)
        for shard in keys.all_shards(settings.shards)
    ]
    replay_reader = GroupReader(redis, keys.REPLAYS, keys.REPLAY_GROUP, name, stale_s=stale_s)
    dispatcher = Dispatcher(settings, redis, enqueue, *log_readers)
    sweeper = Sweeper(settings, redis, enqueue)
    replayer = Replayer(settings, redis, enqueue, replay_reader)
    flusher = DigestFlusher(settings, redis, enqueue)
    resender = AlertResender(settings, redis)
    loops = health.Loops()
    server = None
    if settings.health_port is not None:
        server = health.serve(
            dispatcher_health(loops, dispatcher, *log_readers, replay_reader),
            settings.health_host,
            settings.health_port,
        )

    async def prepare() -> None:
        await heartbeat.beat()  # before the first read: what it reads is its own
        for reader in log_readers:
            await reader.ensure()
        await replay_reader.ensure()
        await dispatcher.reload()

    try:
        await backoff_loop(stop, prepare, "start", once=True, loops=loops)
        log.info("dispatcher %s started", name)
        await asyncio.gather(
            heartbeat.run(stop),
            *(
                backoff_loop(stop, functools.partial(dispatcher.step, i), name, loops=loops)
                for i, name in enumerate(dispatch_loops(settings.shards))
            ),
            backoff_loop(stop, sweeper.step, "sweep", loops=loops),
            backoff_loop(stop, replayer.step, "replay", loops=loops),
            backoff_loop(stop, flusher.step, "digest flush", loops=loops),
            backoff_loop(stop, resender.step, "alert resend", loops=loops),
        )
    finally:
        await heartbeat.end()
        if server is not None:
            server.shutdown()
        await resender.aclose()
        await redis.aclose()
        pool.shutdown(wait=True)
        app.close()


def dispatcher_health(
    loops: health.Loops, dispatcher: Dispatcher, *readers: GroupReader
) -> health.Health:
    names = dispatch_loops(len(dispatcher.readers))

    def live() -> tuple[bool, str]:
        age = max(loops.age(n, loops.turned) for n in names)
        if age > WEDGED_SECONDS:
            return False, f"wedged: the dispatch loop has not gone round for {age:.0f} s"
        return True, "ok"

    def ready() -> tuple[bool, str]:
        if "start" not in loops.succeeded:
            return False, "starting: Redis not reached yet"
        age = max(loops.age(n, loops.succeeded) for n in names)
        if age > READY_SECONDS:
            return False, f"not ready: dispatching has failed for {age:.0f} s"
        return True, "ready"

    h = health.Health("dispatcher", live=live, ready=ready)
    h.gauge("entries_total", "Log entries dispatched.", lambda: dispatcher.dispatched)
    h.gauge(
        "taken_over_total",
        "Pending entries taken over from consumers whose heartbeat stopped.",
        lambda: sum(r.taken_over for r in readers),
    )
    h.gauge(
        "groups_recreated_total",
        "Consumer groups this process created again after Redis lost them "
        "(each group counted once across dispatchers).",
        lambda: sum(r.recreated for r in readers),
    )
    h.gauge(
        "loop_failures_total",
        "Failed rounds of the dispatcher's loops.",
        lambda: sum(loops.failures.values()),
    )
    h.gauge(
        "seconds_since_dispatch",
        "Seconds since the dispatch loop last succeeded.",
        lambda: max(loops.age(n, loops.succeeded) for n in names),
    )
    return h


def run(settings: Settings) -> None:
    """Dispatch until SIGTERM or SIGINT; the current round finishes first."""
    tracing.setup("dispatcher")

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
    from notify.logs import configure
    from notify.settings import load

    settings = load()
    configure("dispatcher", settings.log_format, settings.log_level)
    run(settings)
