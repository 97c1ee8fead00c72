"""The Redis adapter for email digest windows.

An email subscription with ``digest_seconds > 0`` still gets one delivery record per
event. When a worker handles one, it *appends* the event to the subscription's open
window instead of mailing it (``append``: one script that opens the window if there
is none, adds the event and notes the window on the event's record, so a redelivered
event is never added twice), and the record is marked delivered with a note naming
the digest. A window is due ``digest_seconds`` after it opened (or at once when it
holds ``NOTIFY_DIGEST_MAX_EVENTS``); the dispatcher's flusher then *flushes* it: one
script checks the window is the one it means, removes it and creates the digest's own
delivery record (id ``digest_id(subscription, opened_ms)``, body the JSON list of the
events in id order) as the ledger creates any (``new_delivery`` in ``lua/prelude.lua``),
pending and in the due set. Whoever flushes first wins; a second flusher finds the
window gone. So each window makes one digest record, retried, replayed and listed like
any other delivery.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import redis.asyncio as aioredis

from notify import keys
from notify.redis import scripts
from notify.redis.errors import translating
from notify.redis.subscriptions import text
from notify.subscriptions import Subscription

DIGEST_PREFIX = "dig_"


def digest_id(subscription_id: str, opened_ms: int) -> str:
    """Stable for a (subscription, window): whoever flushes names the same record."""
    digest = hashlib.sha256(f"{subscription_id}/digest/{opened_ms}".encode()).digest()[:20]
    return DIGEST_PREFIX + base64.b32encode(digest).decode().lower().rstrip("=")


def is_digest(delivery_id: str) -> bool:
    return delivery_id.startswith(DIGEST_PREFIX)


@translating
class DigestStore:
    def __init__(self, redis: aioredis.Redis, *, transit_s: float, retention_s: int) -> None:
        """``transit_s``: how long a flushed digest's record waits for a worker to receive
        its task before the sweeper looks at it (notify.redis.ledger)."""
        self._redis = redis
        self._transit_ms = int(transit_s * 1000)
        self._retention_ms = retention_s * 1000
        self._append = redis.register_script(scripts.source("digest_append"))
        self._due = redis.register_script(scripts.source("due_now"))
        self._flush = redis.register_script(scripts.source("digest_flush"))

    async def append(
        self, delivery_id: str, sub: Subscription, event_id: str, envelope: bytes, max_events: int
    ) -> int | None:
        """Add the event to the subscription's open window (opening one if needed);
        the window's ``opened_ms``, or None if the delivery record is gone."""
        seconds = int(sub.sink.get("digest_seconds") or 0)
        opened: Any = await self._append(
            keys=[
                keys.delivery(delivery_id),
                keys.digest_window(sub.id),
                keys.digest_events(sub.id),
                keys.DIGEST_DUE,
            ],
            args=[sub.id, event_id, envelope, seconds * 1000, max_events],
        )
        return None if opened is None else int(text(opened))

    async def due(self, count: int) -> list[str]:
        return [text(s) for s in await self._due(keys=[keys.DIGEST_DUE], args=[count])]

    async def opened(self, subscription_id: str) -> int | None:
        value = await self._redis.hget(keys.digest_window(subscription_id), "opened_ms")
        return None if value is None else int(text(value))

    async def flush(self, sub: Subscription, opened_ms: int) -> tuple[str, int]:
        """Close the window opened at ``opened_ms`` into its digest record; the record's
        id and how many events it holds (0: another flusher was first)."""
        did = digest_id(sub.id, opened_ms)
        count: Any = await self._flush(
            keys=[
                keys.digest_window(sub.id),
                keys.digest_events(sub.id),
                keys.DIGEST_DUE,
                keys.delivery(did),
                keys.delivery_attempts(did),
                keys.subscription_deliveries(sub.id),
                keys.RETRY_DUE,
            ],
            args=[
                sub.id, opened_ms, did, sub.user, sub.channel, self._transit_ms, self._retention_ms,
            ],
        )  # fmt: skip
        return did, int(count)

    async def drop(self, subscription_id: str) -> None:
        """Forget the window of a subscription that no longer exists."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(keys.digest_window(subscription_id), keys.digest_events(subscription_id))
        pipe.zrem(keys.DIGEST_DUE, subscription_id)
        await pipe.execute()
