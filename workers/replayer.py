"""The replayer: serves ``POST /v1/subscriptions/{id}/replay`` in every dispatcher process.

Requests are a stream read through a consumer group (notify.redis.groups), so each is
done once; a replay interrupted by a crash is taken over by another replayer once the
crashed one's heartbeat is gone, and redone (its records are reused).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from notify import keys
from notify.events import is_last_possible, with_id
from notify.redis.client import Client
from notify.redis.eventlog import entry_from
from notify.redis.groups import GroupReader, refused_for_good
from notify.redis.ledger import Ledger
from notify.redis.subscriptions import ReplayRequest, SubscriptionStore, replay_from_fields, text
from notify.routing import Delivery, replayed
from notify.settings import Settings
from notify.subscriptions import Subscription

log = logging.getLogger("notify.dispatcher")

REPLAY_PAGE = 1000
REPLAY_MAX_PAGES = 10_000
Enqueue = Callable[[Sequence[str]], Awaitable[int]]


def dropped_for_good(exc: Exception) -> bool:
    """A replay request that no retry can carry out: malformed (written to the stream
    by something other than the API), or refused by Redis as such."""
    return isinstance(exc, KeyError | ValueError) or refused_for_good(exc)


class Replayer:
    def __init__(
        self, settings: Settings, redis: Client, enqueue: Enqueue, reader: GroupReader
    ) -> None:
        self._redis = redis
        self._logs = [shard.log for shard in keys.all_shards(settings.shards)]
        self._enqueue = enqueue
        self._reader = reader
        self._subs = SubscriptionStore(redis)
        self._ledger = Ledger(
            redis,
            lease_s=settings.delivery_lease_seconds,
            retention_s=settings.delivery_retention_seconds,
            hold_s=settings.heartbeat_seconds,
        )

    async def step(self) -> int:
        entries = await self._reader.read(1, 1000)
        for raw_id, fields in entries:
            if fields:  # else trimmed while pending: nothing left to do
                try:
                    await self.replay(replay_from_fields(raw_id, fields))
                except Exception as exc:
                    if not dropped_for_good(exc):
                        raise  # Redis or the broker away: the request waits to be read again
                    # it would fail the same way on every claim, forever: drop it, loudly
                    log.error(
                        "replay request %s dropped: %s: %s",
                        text(raw_id),
                        type(exc).__name__,
                        exc,
                    )
            await self._reader.ack([raw_id])
        return len(entries)

    async def replay(self, request: ReplayRequest) -> None:
        sub = await self._subs.get(request.subscription)
        if sub is None or is_last_possible(request.after):
            return
        total = 0
        for stream in self._logs:
            total += await self._replay_log(stream, sub, request)
        log.info("replayed %d events to %s after %s", total, sub.id, request.after)

    async def _replay_log(self, stream: str, sub: Subscription, request: ReplayRequest) -> int:
        """Replay one shard's log (ids are times: the same bounds serve every shard)."""
        after, total = request.after, 0
        for _ in range(REPLAY_MAX_PAGES):
            rows: Any = await self._redis.xrange(
                stream, min="(" + after, max=request.until, count=REPLAY_PAGE
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
            # still ours: a long replay must not look abandoned to the idle backstop
            await self._reader.keep(request.id)
        return total
