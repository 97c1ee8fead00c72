"""The connection hub: one log reader per process fanning out to local connections.

The reader tails the global log with a single blocking XREAD and hands each entry
to the live connections whose patterns match it (found through a PatternIndex, so
the cost follows the matching connections, not all of them). Each connection owns a
bounded buffer; after each read batch the hub writes everything a stream got from it
in one write, straight to the transport when it can (no task wake-up), else through
the connection's own writer task. Coalescing is what lets one process push over a
million events a second; writing without a wake-up is what keeps latency low when
there is nothing to coalesce.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, TypeVar

from notify import tracing
from notify.api import metrics
from notify.channels import PatternIndex
from notify.errors import StoreUnavailable
from notify.eventlog import Entry
from notify.events import parse_id, stored_traceparent, with_id
from notify.redis.eventlog import RedisEventLog, ShardedEventLog
from notify.shards import CURSOR_MARK, Positions, Vector, id_text, token
from notify.sse import KEEPALIVE, event_frame
from notify.wsframe import event_frame as ws_event_frame

log = logging.getLogger("notify.hub")
now = time.monotonic

Kind = Literal["sse", "ws"]
T = TypeVar("T", bytes, str)
Sender = Callable[[bytes], Awaitable[None]]
"""Writes whole frames (SSE frames, or WebSocket frames built by notify.wsframe)."""
EntryFilter = Callable[[Entry], bool]
Renew = Callable[[list[tuple[str, str]]], Awaitable[None]]
Direct = Callable[[bytes], bool]
"""Writes bytes to the connection now, or returns False when it cannot."""


class Subscriber:
    """One live connection's side of the hub: patterns, a bounded buffer, a wake-up.

    Timers are not per connection: the hub's housekeeping task sends keepalives to
    idle connections and cuts writes that outlive the send timeout, so a wake-up costs
    one future and a write costs no timer at all.
    """

    __slots__ = (
        "_sender",
        "_waiter",
        "accept",
        "buf",
        "closed",
        "direct",
        "hold",
        "keepalive",
        "kind",
        "last_write",
        "lease",
        "max_queued",
        "origin",
        "patterns",
        "reason",
        "sending_since",
        "stamp",
        "wake_hook",
    )

    def __init__(
        self,
        kind: Kind,
        max_queued: int,
        origin: str | None = None,
        accept: EntryFilter | None = None,
    ) -> None:
        self.kind: Kind = kind
        self.max_queued = max_queued
        self.origin = origin or None
        self.accept = accept
        # WebSocket peers are kept alive by the server's protocol pings
        self.keepalive = KEEPALIVE if kind == "sse" else None
        self.patterns: set[str] = set()
        self.buf: list[bytes] = []
        self.closed = False
        self.reason = ""
        self.hold = 0
        self.stamp: object = None
        self.last_write = 0.0
        self.sending_since = 0.0
        self.lease: tuple[str, str] | None = None
        """(subject, stream id) when concurrent streams per subject are limited."""
        self._waiter: asyncio.Future[None] | None = None
        self._sender: asyncio.Task[Any] | None = None
        self.direct: Direct | None = None
        """Set by a stream once it is live: see :meth:`flush`."""
        self.wake_hook: Callable[[], None] | None = None
        """Called instead when no :meth:`pump` waits: a connection that keeps no
        writer task while idle starts one (:meth:`drain`), or stops, from here."""

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
        elif self.wake_hook is not None:
            self.wake_hook()

    def queue(self, frame: bytes) -> bool:
        """Add a frame without sending it; False when that overflowed the buffer (the
        connection is then closed as a slow consumer)."""
        buf = self.buf
        buf.append(frame)
        if len(buf) > self.max_queued:
            self.close("slow_consumer")
            metrics.SLOW_CONSUMERS.inc()
            return False
        return True

    def push(self, frame: bytes) -> None:
        if self.queue(frame):
            metrics.sent(self.flush(now()))

    def flush(self, at: float) -> int:
        """Send what is queued: written right here when the connection has a direct
        writer, no write of its own in flight and room in its transport (no task
        wake-up, one write for everything queued); otherwise its writer task is woken.
        Returns how many events were written here (the caller counts them)."""
        if self.hold or self.closed or not self.buf:
            return 0
        direct = self.direct
        if direct is not None and not self.sending_since:
            frames = self.buf
            if direct(frames[0] if len(frames) == 1 else b"".join(frames)):
                self.buf = []
                self.last_write = at
                return self.events_in(frames)
        self._wake()
        return 0

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.reason = reason
        self.buf = []
        if self.sending_since and self._sender is not None:
            # a writer stuck on a peer that stopped reading gives up now
            self._sender.cancel()
        self._wake()

    def release(self) -> None:
        self.hold -= 1
        metrics.sent(self.flush(now()))

    async def send(
        self,
        send: Callable[[T], Awaitable[None]],
        data: T,
        task: asyncio.Task[Any] | None = None,
    ) -> None:
        """One write. If the connection is closed meanwhile (slow consumer, send
        timeout, shutdown) the write is abandoned and the connection stays closed.
        ``task`` is the calling task, when the caller knows it (it saves a lookup)."""
        if self.closed:
            return
        if task is None:
            task = asyncio.current_task()
        self._sender = task
        self.last_write = self.sending_since = now()
        try:
            await send(data)
        except asyncio.CancelledError:
            if self.closed and task is not None and task.uncancel() == 0:
                return  # our own close() abandoned this write
            raise
        finally:
            self.sending_since = 0.0
            self._sender = None

    async def drain(self, send: Sender) -> None:
        """Write what is queued until nothing is (or the connection closes or holds):
        a writer that ends when idle, for a connection whose writes mostly go direct."""
        me = asyncio.current_task()
        while self.buf and not self.closed and not self.hold:
            frames, self.buf = self.buf, []
            await self.send(send, frames[0] if len(frames) == 1 else b"".join(frames), me)
            metrics.sent(self.events_in(frames))

    async def pump(self, send: Sender) -> None:
        """Drain the buffer until closed: everything pending goes out in one write."""
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        while not self.closed:
            if not self.buf or self.hold:
                self._waiter = loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            frames, self.buf = self.buf, []
            await self.send(send, frames[0] if len(frames) == 1 else b"".join(frames), me)
            metrics.sent(self.events_in(frames))

    def events_in(self, frames: list[bytes]) -> int:
        """How many of ``frames`` are events: a keepalive is queued only on an empty
        buffer, so it can only be the first (and is not an event sent)."""
        return len(frames) - (frames[0] is self.keepalive)


WANTED_MEMORY = 10_000
"""Channel names a hub remembers the answer of :meth:`Hub.wants` for."""
ACTIVE: weakref.WeakSet[Hub] = weakref.WeakSet()
"""Hubs of this process, so the server can end their streams before it stops."""


class Hub:
    def __init__(
        self,
        log: RedisEventLog | ShardedEventLog,
        *,
        block_ms: int = 5000,
        batch: int = 1000,
        keepalive_seconds: float = 15.0,
        send_timeout_seconds: float = 10.0,
    ) -> None:
        self._keepalive = keepalive_seconds
        self._send_timeout = send_timeout_seconds
        self._shards = log.shards if isinstance(log, ShardedEventLog) else [log]
        self._positions = Positions(len(self._shards))
        self._sharded = len(self._shards) > 1
        self._block_ms = block_ms
        self._batch = batch
        self._index: PatternIndex[Subscriber] = PatternIndex()
        self._wanted: dict[bytes, bool] = {}
        """Stored channel name -> whether any local connection's pattern matches it;
        forgotten whenever a pattern is added or removed."""
        self._waiters: list[tuple[Vector, asyncio.Future[None]]] = []
        self._vector = [(0, 0)] * len(self._shards)
        """Per shard, the last id the reader has fanned out (or read past)."""
        self._tokens = [""] * len(self._shards)
        self.cursor = self._positions.encode(self._vector)
        """The position everything up to which was fanned out (a cursor when sharded)."""
        self._up: set[int] = set()
        self.running = False
        self.started = asyncio.Event()
        self.subscribers: set[Subscriber] = set()
        ACTIVE.add(self)

    # --- connections -----------------------------------------------------------

    def track(self, sub: Subscriber) -> None:
        """Count a connection in (keepalives, send deadline, shutdown) before it is
        attached to any pattern, so its catch-up writes are watched too."""
        self.subscribers.add(sub)

    def attach(self, sub: Subscriber, patterns: Iterable[str]) -> str:
        """Start live delivery of ``patterns`` to ``sub``; returns the position after
        which live delivery begins (everything up to it was fanned out already)."""
        for p in patterns:
            if p not in sub.patterns:
                sub.patterns.add(p)
                self._index.add(p, sub)
                self._wanted.clear()
        self.subscribers.add(sub)
        return self.cursor

    def detach(self, sub: Subscriber, patterns: Iterable[str] | None = None) -> None:
        for p in list(sub.patterns if patterns is None else patterns):
            if p in sub.patterns:
                sub.patterns.discard(p)
                self._index.remove(p, sub)
                self._wanted.clear()
        if patterns is None:
            self.subscribers.discard(sub)

    async def reached(self, position: str, timeout: float = 30.0) -> None:
        """Wait until the reader has fanned out everything up to ``position``."""
        key = self._positions.parse(position)
        if self._positions.covers(tuple(self._vector), key):
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((key, fut))
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError as exc:
            raise StoreUnavailable("the event reader is behind; try again") from exc

    @property
    def sharded(self) -> bool:
        return self._sharded

    def behind(self, a: str, b: str) -> bool:
        """Whether position ``a`` misses something position ``b`` has (some shard)."""
        return self._positions.behind(a, b)

    def close_all(self, reason: str) -> None:
        for sub in list(self.subscribers):
            sub.close(reason)

    async def housekeep(self, renew: Renew | None = None, renew_every: float = 0.0) -> None:
        """Keepalives for idle connections and the send deadline for busy ones, for
        every connection of the process from one task; and the renewal of the
        connections' leases (``renew``) every ``renew_every`` seconds (the gateway's
        is a third of ``NOTIFY_STREAM_LEASE_SECONDS``), at most once a tick."""
        period = min(1.0, self._keepalive / 2, self._send_timeout / 2)
        renewed = now()
        while True:
            await asyncio.sleep(period)
            at = now()
            self.sweep(at)
            metrics.flush_sent()
            # kept current here, not only at a scrape: with --workers, the scrape is
            # answered by one process and reports the others' last value
            metrics.READER_UP.set(1 if self.running else 0)
            if renew is not None and at - renewed >= renew_every:
                renewed = at
                await renew([s.lease for s in self.subscribers if s.lease and not s.closed])

    def sweep(self, at: float) -> None:
        idle_before = at - self._keepalive
        stuck_before = at - self._send_timeout
        for sub in list(self.subscribers):
            if sub.closed:
                continue
            if sub.sending_since:
                if sub.sending_since < stuck_before:
                    metrics.SLOW_CONSUMERS.inc()
                    sub.close("slow_consumer")
            elif sub.keepalive is not None and sub.last_write < idle_before and not sub.buf:
                sub.push(sub.keepalive)

    # --- the reader ------------------------------------------------------------

    async def run(self) -> None:
        """Tail the log forever (each shard's, side by side), reconnecting with
        backoff when Redis goes away."""
        await asyncio.gather(*(self._run_shard(i) for i in range(len(self._shards))))

    async def _run_shard(self, shard: int) -> None:
        shard_log = self._shards[shard]
        delay = 0.05
        first = True
        while True:
            try:
                head = await shard_log.head()
                if first:
                    self._advance(head, shard)
                    first = False
                elif parse_id(head) < self._vector[shard]:
                    # the log went back in time (Redis lost its data): read it afresh
                    log.warning("event log is behind our cursor %s; rereading", self.cursor)
                    self._advance("0-0", shard, force=True)
                self._set_running(shard, True)
                delay = 0.05
                while True:
                    after = id_text(self._vector[shard])
                    page = await shard_log.tail(after, self._batch, self._block_ms, self.wants)
                    if page.next is not None:
                        self.fan_out(page.entries, page.next, shard)
            except StoreUnavailable as exc:
                if self.running:
                    log.warning("event reader lost Redis: %s", exc)
                self._set_running(shard, False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except Exception:
                # never let the one reader of the process die: log, back off, go on
                log.exception("event reader failed; restarting it")
                self._set_running(shard, False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _set_running(self, shard: int, up: bool) -> None:
        """Running (and started) once every shard's reader has read its head."""
        if up:
            self._up.add(shard)
        else:
            self._up.discard(shard)
        self.running = len(self._up) == len(self._shards)
        if self.running:
            self.started.set()

    def _advance(self, event_id: str, shard: int = 0, *, force: bool = False) -> None:
        key = parse_id(event_id)
        if key > self._vector[shard] or force:
            self._vector[shard] = key
            if self._sharded:
                self._tokens[shard] = token(key)
                self.cursor = CURSOR_MARK + ".".join(self._tokens)
            else:
                self.cursor = event_id
        if self._waiters:
            at, covers = tuple(self._vector), self._positions.covers
            ready = [w for w in self._waiters if covers(at, w[0])]
            if ready:
                self._waiters = [w for w in self._waiters if not covers(at, w[0])]
                for _, fut in ready:
                    if not fut.done():
                        fut.set_result(None)

    def _step(self, shard: int, event_id: str) -> str:
        """Sharded: the cursor just after ``event_id`` (its frame's position)."""
        self._vector[shard] = parse_id(event_id)
        self._tokens[shard] = token(self._vector[shard])
        return CURSOR_MARK + ".".join(self._tokens)

    def wants(self, channel: bytes) -> bool:
        """Whether any local connection may want events of ``channel`` (stored name):
        the reader builds nothing for the rest, which is most of the log for a
        gateway that mostly takes publishes."""
        known = self._wanted.get(channel)
        if known is None:
            if len(self._wanted) >= WANTED_MEMORY:
                self._wanted.clear()
            known = next(self._index.match(channel.decode(errors="replace")), None) is not None
            self._wanted[channel] = known
        return known

    def fan_out(self, entries: list[Entry], last: str | None = None, shard: int = 0) -> None:
        """Queue each entry for its matching connections, then send each connection
        everything it got from this batch at once; the reader has now passed ``last``
        (default: the last entry) on ``shard``."""
        traced_from = time.time_ns() if tracing.ENABLED else 0
        match = self._index.match
        sharded = self._sharded
        touched: list[Subscriber] = []
        for entry in entries:
            position = self._step(shard, entry.id) if sharded else entry.id
            envelope: bytes | None = None
            sse: bytes | None = None
            ws: bytes | None = None
            for sub in match(entry.channel):
                if sub.stamp is entry or sub.closed:
                    continue
                sub.stamp = entry  # a connection with overlapping patterns gets it once
                if sub.origin is not None and sub.origin == entry.origin:
                    continue
                if sub.accept is not None and not sub.accept(entry):
                    continue
                if envelope is None:
                    envelope = with_id(entry.id, entry.body)
                if sub.kind == "sse":
                    if sse is None:
                        sse = event_frame(position, envelope)
                    frame = sse
                else:
                    if ws is None:
                        # unmasked: the same frame bytes for every socket
                        ws = ws_event_frame(envelope, position if sharded else None)
                    frame = ws
                if not sub.buf:
                    touched.append(sub)
                sub.queue(frame)
        at = now()
        written = 0
        for sub in touched:
            written += sub.flush(at)
        metrics.sent(written)
        if traced_from:
            traced_fan_out(entries, traced_from)
        if last is not None or entries:
            self._advance(last or entries[-1].id, shard)


def traced_fan_out(entries: list[Entry], started_ns: int) -> None:
    """A ``notify.fan_out`` span for each entry that carries a trace, from the start of
    its batch's fan-out until now (tracing on only: the loop above stays as it is)."""
    for entry in entries:
        parent = stored_traceparent(entry.body)
        if parent is not None:
            attributes = {
                "messaging.message.id": entry.id,
                "messaging.destination.name": entry.channel,
            }
            tracing.record("notify.fan_out", parent, started_ns, "consumer", attributes)


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it to end.

    Cancelled again until it ends: redis-py 8 can swallow one cancellation of a
    blocking read (seen on the reader's XREAD once the process's other client had been
    used), which left shutdown waiting for the next XREAD timeout, or forever.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.05)
    with contextlib.suppress(asyncio.CancelledError):
        await task
