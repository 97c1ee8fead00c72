"""Rate limits kept in Redis, so they hold across every gateway process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from notify.errors import RateLimited, StoreUnavailable
from notify.redis.client import AsyncRedis
from notify.redis.limits import LimitStore


class RateLimiter:
    """The gateway's rate limits; their counters are in Redis (``LimitStore``), so they
    hold across every gateway process."""

    def __init__(
        self,
        client: AsyncRedis,
        publish_rate: float | None,
        max_streams: int | None = None,
        auth_failures_per_minute: int = 60,
        *,
        stream_lease_seconds: float,
    ) -> None:
        self._store = LimitStore(client)
        self._rate = publish_rate
        self._max_streams = max_streams
        self._stream_lease = stream_lease_seconds
        """A gateway renews its streams' leases well within this; a dead one's lapse."""
        self._auth_limit = auth_failures_per_minute
        self._blocked: dict[str, float] = {}
        """Addresses over the failure limit, until when (learnt from Redis, so every
        gateway counts the same failures; kept here so blocked clients cost nothing)."""

    # --- concurrent streams --------------------------------------------------

    async def open_stream(self, subject: str, stream_id: str) -> None:
        if self._max_streams is None:
            return
        leased = await self._store.lease_stream(
            subject, stream_id, limit=self._max_streams, lease_s=self._stream_lease
        )
        if not leased:
            raise RateLimited(
                f"at most {self._max_streams} streams may be open per subject",
                retry_after=5.0,
            )

    async def close_stream(self, subject: str, stream_id: str) -> None:
        if self._max_streams is None:
            return
        with contextlib.suppress(StoreUnavailable):
            await self._store.release_stream(subject, stream_id)

    async def renew_streams(self, leases: list[tuple[str, str]]) -> None:
        """Extend the leases of this gateway's open streams ((subject, id) pairs)."""
        if self._max_streams is None or not leases:
            return
        with contextlib.suppress(StoreUnavailable):
            await self._store.renew_streams(leases, self._stream_lease)

    # --- failed authentication ------------------------------------------------

    def check_address(self, address: str | None) -> None:
        if address is None:
            return
        until = self._blocked.get(address)
        if until is not None:
            if until > time.monotonic():
                raise RateLimited(
                    "too many failed authentications from this address",
                    retry_after=until - time.monotonic(),
                )
            del self._blocked[address]

    async def auth_failed(self, address: str | None) -> None:
        if address is None:
            return
        with contextlib.suppress(StoreUnavailable):
            count, ttl = await self._store.auth_failed(address)
            if count > self._auth_limit:
                if len(self._blocked) > 100_000:
                    self._blocked.clear()
                self._blocked[address] = time.monotonic() + max(1, ttl)

    async def take_publish(self, subject: str, n: int) -> None:
        if self._rate is None:
            return
        rate = self._rate
        ok, wait = await self._store.take(subject, n, rate=rate, burst=2 * rate)
        if not ok:
            raise RateLimited(f"publish rate limit of {rate:g} events/s exceeded", retry_after=wait)


class FairShare:
    """At most ``limit`` API requests of one client run at once in this process; the
    client's others wait their turn (they are not refused).

    One event loop serves everyone, so a client flooding the API from many connections
    would otherwise have every other client's request queue behind all of its own. With
    its share capped, another client waits behind at most ``limit`` of them.

    A turn ends when the request starts answering (``release``), not when its response
    ends: a stream (``/v1/feed``) answers for hours and is outside the share.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[Callable[[], None]]:
        """Wait for a turn; yields ``release``, which ends the turn early (idempotent)."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = (asyncio.Semaphore(self.limit), [0])
        semaphore, users = slot
        users[0] += 1
        held = False

        def release() -> None:
            nonlocal held
            if held:
                held = False
                semaphore.release()

        try:
            await semaphore.acquire()
            held = True
            yield release
        finally:
            release()
            users[0] -= 1
            if not users[0]:
                del self._slots[key]

    def __len__(self) -> int:
        return len(self._slots)
