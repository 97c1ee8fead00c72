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
events in id order) in the ledger's format, pending and in the due set. Whoever
flushes first wins; a second flusher finds the window gone. So each window makes one
digest record, retried, replayed and listed like any other delivery.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import redis.asyncio as aioredis

from notify import keys
from notify.redis.errors import translating
from notify.redis.ledger import _NOW
from notify.redis.subscriptions import text
from notify.subscriptions import Subscription

DIGEST_PREFIX = "dig_"

# KEYS: dlv, window, events, due. ARGV: sub, event_id, envelope, window_ms, max_events.
# Returns the opened_ms of the window holding the event, or false if the record is gone.
_APPEND = (
    _NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local seen = redis.call('HGET', KEYS[1], 'digest')
if seen then return seen end
local opened = redis.call('HGET', KEYS[2], 'opened_ms')
if not opened then
  opened = string.format('%d', now)
  redis.call('HSET', KEYS[2], 'opened_ms', opened, 'closes_ms', now + tonumber(ARGV[4]))
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[4]), ARGV[1])
end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
if redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[5]) then
  redis.call('ZADD', KEYS[4], now, ARGV[1])
end
redis.call('HSET', KEYS[1], 'digest', opened)
return opened
"""
)

# KEYS: due. ARGV: count. The subscriptions whose window is due.
_DUE = _NOW + "return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])\n"

# KEYS: window, events, due, dlv, attempts, sub index, retry due.
# ARGV: sub, opened_ms, digest id, user, pattern, lease_ms, retention_ms.
# Returns the number of events in the digest created, 0 when someone else flushed.
_FLUSH = (
    _NOW
    + """
if redis.call('HGET', KEYS[1], 'opened_ms') ~= ARGV[2] then return 0 end
local flat = redis.call('HGETALL', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
if #flat == 0 or redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
local items = {}
for i = 1, #flat, 2 do
  local ms, seq = string.match(flat[i], '^(%d+)-(%d+)$')
  table.insert(items, {tonumber(ms), tonumber(seq), flat[i], flat[i + 1]})
end
table.sort(items, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
local bodies = {}
for i, item in ipairs(items) do bodies[i] = item[4] end
redis.call('HSET', KEYS[4], 'id', ARGV[3], 'subscription', ARGV[1], 'user', ARGV[4],
  'kind', 'email', 'event_id', items[1][3], 'channel', ARGV[5], 'type', 'digest',
  'body', '[' .. table.concat(bodies, ',') .. ']', 'status', 'pending', 'attempt_count', 0,
  'created_ms', now, 'next_ms', now)
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - tonumber(ARGV[7]))
redis.call('ZADD', KEYS[6], now, ARGV[3])
redis.call('ZADD', KEYS[7], now + tonumber(ARGV[6]), ARGV[3])
return #items
"""
)


def digest_id(subscription_id: str, opened_ms: int) -> str:
    """Stable for a (subscription, window): whoever flushes names the same record."""
    digest = hashlib.sha256(f"{subscription_id}/digest/{opened_ms}".encode()).digest()[:20]
    return DIGEST_PREFIX + base64.b32encode(digest).decode().lower().rstrip("=")


def is_digest(delivery_id: str) -> bool:
    return delivery_id.startswith(DIGEST_PREFIX)


@translating
class DigestStore:
    def __init__(self, redis: aioredis.Redis, *, lease_s: float, retention_s: int) -> None:
        self._redis = redis
        self._lease_ms = int(lease_s * 1000)
        self._retention_ms = retention_s * 1000
        self._append = redis.register_script(_APPEND)
        self._due = redis.register_script(_DUE)
        self._flush = redis.register_script(_FLUSH)

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
                sub.id, opened_ms, did, sub.user, sub.channel, self._lease_ms, self._retention_ms,
            ],
        )  # fmt: skip
        return did, int(count)

    async def drop(self, subscription_id: str) -> None:
        """Forget the window of a subscription that no longer exists."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(keys.digest_window(subscription_id), keys.digest_events(subscription_id))
        pipe.zrem(keys.DIGEST_DUE, subscription_id)
        await pipe.execute()
