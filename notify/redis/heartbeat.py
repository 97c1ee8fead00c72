"""Heartbeats: the proof that a dispatcher or worker process is alive.

A process sets its key (``keys.alive``, a short TTL) every third of that TTL. What it
holds is its own only while the key lives: consumer-group entries (notify.redis.groups)
and delivery leases. A killed or frozen process stops beating; within the TTL its work
is taken over by a survivor or its replacement. A clean exit deletes the key at once.

Dispatchers beat from their event loop (``Heartbeat``). A worker process beats from a
thread (``LeaseKeeper``), because its event loop runs only while a task runs and may be
busy with a slow receiver; each beat also renews the leases of the deliveries in hand,
so a slow but alive worker never loses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence

from notify import keys
from notify.redis.client import Client, connect_sync
from notify.redis.errors import REDIS_ERRORS
from notify.redis.ledger import RENEW, RESERVE

log = logging.getLogger("notify.heartbeat")


def process_name() -> str:
    """This process's name in Redis (heartbeat, consumer name): unique while it lives."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Heartbeat:
    def __init__(self, redis: Client, process: str, ttl_s: float) -> None:
        self._redis = redis
        self._key = keys.alive(process)
        self._ttl_ms = int(ttl_s * 1000)
        self.interval = ttl_s / 3

    async def beat(self) -> None:
        await self._redis.set(self._key, b"1", px=self._ttl_ms)

    async def run(self, stop: asyncio.Event) -> None:
        """Beat until ``stop``; a failed beat is logged and the next one tried on time."""
        while not stop.is_set():
            try:
                await self.beat()
            except Exception as exc:
                log.warning("heartbeat failed (%s: %s)", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def end(self) -> None:
        """Stop holding anything now: survivors need not wait for the TTL."""
        with contextlib.suppress(Exception):
            await self._redis.delete(self._key)


class LeaseKeeper:
    """A worker process's heartbeat thread; it also renews the leases in hand."""

    def __init__(
        self, url: str, process: str, ttl_s: float, max_reserve_s: float | None = None
    ) -> None:
        """``max_reserve_s``: how long a received delivery may stay reserved without being
        claimed (the delivery lease): past it, it is let go to fall due. Celery drops the
        tasks it has received but not started when its broker connection is lost (a Redis
        failover), without acknowledging or rejecting them: kept reserved, they would
        never fall due while this process lives."""
        self._redis = connect_sync(url, socket_timeout=max(ttl_s / 3, 0.5))
        self._renew = self._redis.register_script(RENEW)
        self._reserve = self._redis.register_script(RESERVE)
        self._reserved: dict[str, float] = {}  # id -> when it was received (monotonic)
        self._max_reserve_s = max_reserve_s
        self._falling: set[str] = set()
        self._key = keys.alive(process)
        self._ttl_ms = int(ttl_s * 1000)
        self._interval = ttl_s / 3
        self._held: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-heartbeat", daemon=True)

    def start(self) -> None:
        self._beat()  # alive before the first claim
        self._thread.start()

    def hold(self, token: str, ids: Sequence[str]) -> None:
        """Renew the leases taken under ``token`` (on these ids) from now on."""
        with self._lock:
            self._held[token] = tuple(ids)

    def reserve(self, ids: Sequence[str]) -> None:
        """Keep these deliveries, received but not yet claimed, from waiting out a whole
        lease should this process die (until a claim, an outcome or a retry time).

        Applied here, before the caller goes on (one round trip, in the thread that
        received them), not at the next beat: a process killed in between would leave
        them to wait out the lease; handing them to the heartbeat thread left a window
        of a GIL switch or more under load. If Redis does not answer, every beat tries
        again."""
        at = time.monotonic()
        with self._lock:
            for i in ids:
                self._reserved.setdefault(i, at)
        with contextlib.suppress(*REDIS_ERRORS):
            self._apply_reservations(ids)

    def _apply_reservations(self, ids: Sequence[str]) -> None:
        """Push these reserved deliveries one TTL ahead (and the process's key); forget
        the ones claimed, final or waiting for a retry time meanwhile."""
        kept = self._reserve(keys=self._reserve_keys(ids), args=[self._ttl_ms, *ids])
        done = {i for i, k in zip(ids, kept, strict=True) if not int(k)}
        if done:
            with self._lock:
                for i in done:
                    self._reserved.pop(i, None)

    def _reserve_keys(self, ids: Sequence[str]) -> list[str]:
        return [self._key, keys.RETRY_DUE, keys.DELIVERIES_RECEIVED, *map(keys.delivery, ids)]

    def unreserve(self, ids: Sequence[str]) -> None:
        """Stop keeping these: their task ended (its outcome is recorded, or it failed
        before claiming them, and then they fall due within the TTL for another try)."""
        with self._lock:
            for i in ids:
                self._reserved.pop(i, None)

    def fall_due(self, ids: Sequence[str]) -> None:
        """Their task failed before claiming them: stop keeping them and make them fall
        due within a TTL. Pushed once (now, or at the next beat Redis answers), then left
        to lapse: a reservation refused earlier (Redis failing over) would otherwise
        leave them waiting out the lease set when they were created."""
        with self._lock:
            for i in ids:
                self._reserved.pop(i, None)
            self._falling.update(ids)
        with contextlib.suppress(*REDIS_ERRORS):
            self._push_falling()

    def _push_falling(self) -> None:
        with self._lock:
            ids = sorted(self._falling)
        if ids:
            self._reserve(keys=self._reserve_keys(ids), args=[self._ttl_ms, *ids])
            with self._lock:
                self._falling.difference_update(ids)

    def release(self, token: str) -> None:
        """Stop renewing: unfinished ones lapse within the TTL and go to another worker."""
        with self._lock:
            self._held.pop(token, None)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(*REDIS_ERRORS):
            self._redis.delete(self._key)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._beat()

    def _beat(self) -> None:
        """Keep the process's key alive, push the reserved deliveries and the leases in
        hand one TTL ahead."""
        with self._lock:
            held = list(self._held.items())
            if self._max_reserve_s is not None:
                # received long ago and still not claimed: its task is gone (see __init__)
                before = time.monotonic() - self._max_reserve_s
                stale = [i for i, at in self._reserved.items() if at < before]
                for i in stale:
                    del self._reserved[i]
                self._falling.update(stale)
            reserved = sorted(self._reserved)
        try:
            self._push_falling()
            if reserved:
                self._apply_reservations(reserved)
            elif not held:
                self._redis.set(self._key, b"1", px=self._ttl_ms)
            for token, ids in held:
                self._renew(
                    keys=[self._key, keys.RETRY_DUE, *(keys.delivery(i) for i in ids)],
                    args=[self._ttl_ms, token, *ids],
                )
        except REDIS_ERRORS as exc:
            log.warning("heartbeat failed (%s: %s)", type(exc).__name__, exc)
