"""The Redis adapter for delivery records, their attempts, the due set and target rates.

Every pending delivery sits in the due set (``keys.RETRY_DUE``) scored by when some
process should next look at it: when it is created (now + lease, in case its Celery
task is lost), when a worker claims it (now + the heartbeat TTL, pushed ahead by every
beat of the claiming process, so it falls due within a TTL of that process's death),
and when an attempt fails (the retry time). The sweeper re-enqueues whatever falls due, so
the broker never holds a delay and no crash strands a delivery. All times come from
the Redis clock (``TIME`` inside the scripts), so workers' clocks need not agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from notify import keys
from notify.redis.errors import translating
from notify.redis.subscriptions import text
from notify.retry import as_datetime
from notify.routing import Delivery

MAX_ATTEMPTS_KEPT = 50
_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

# KEYS: dlv, attempts, sub index, due. ARGV: id, sub, user, kind, event_id, channel, type,
# body, lease_ms, retention_ms, replay. Returns 1 created/reset, 2 exists pending, 0 final.
_CREATE = (
    _NOW
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status then
  if status == 'pending' then return 2 end
  if ARGV[11] ~= '1' then return 0 end
  redis.call('HSET', KEYS[1], 'status', 'pending', 'attempt_count', 0, 'body', ARGV[8],
    'next_ms', now)
  -- 'digest': a replayed event goes into a new digest window (notify.redis.digests)
  redis.call('HDEL', KEYS[1], 'lease', 'lease_until', 'done_ms', 'digest')
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
else
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'subscription', ARGV[2], 'user', ARGV[3],
    'kind', ARGV[4], 'event_id', ARGV[5], 'channel', ARGV[6], 'type', ARGV[7],
    'body', ARGV[8], 'status', 'pending', 'attempt_count', 0, 'created_ms', now, 'next_ms', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[10]))
end
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[9]), ARGV[1])
return 1
"""
)

# KEYS: due, dlv... ARGV: lease_ms, token, id... One entry per id:
# {1, fields...} claimed, {0} gone or final, {-1} leased elsewhere, {-2} not yet due.
_CLAIM = (
    _NOW
    + """
local lease = tonumber(ARGV[1])
local out = {}
for n = 1, #KEYS - 1 do
  local key, id = KEYS[n + 1], ARGV[n + 2]
  local f = redis.call('HMGET', key, 'status', 'lease_until', 'next_ms')
  if f[1] ~= 'pending' then
    redis.call('ZREM', KEYS[1], id)
    out[n] = {0}
  elseif f[2] and tonumber(f[2]) > now then
    out[n] = {-1}
  elseif f[3] and tonumber(f[3]) > now then
    out[n] = {-2}
  else
    redis.call('HSET', key, 'lease', ARGV[2], 'lease_until', now + lease)
    redis.call('ZADD', KEYS[1], now + lease, id)
    local v = redis.call('HMGET', key, 'subscription', 'user', 'kind', 'event_id', 'body',
      'attempt_count')
    out[n] = {1, v[1], v[2], v[3], v[4], v[5], v[6]}
  end
end
return out
"""
)

# KEYS: due, metrics, all failures, then dlv, attempts and the owner's failures per
# delivery. ARGV: token, retention_s, kept, metric count m, m (name, increment) pairs,
# then id, outcome, attempt json ('' = none), delay_ms per delivery. A success is
# recorded even by a worker whose lease lapsed: the receiver has the event. Other
# outcomes only count from the lease holder. A delivery that ends failed goes into both
# failure indexes, which drop what is older than the retention.
_FINISH = (
    _NOW
    + """
local token, retention, kept = ARGV[1], ARGV[2], tonumber(ARGV[3])
local m = tonumber(ARGV[4])
for i = 0, m - 1 do
  redis.call('HINCRBY', KEYS[2], ARGV[5 + 2 * i], ARGV[6 + 2 * i])
end
local base = 5 + 2 * m
local oldest = now - tonumber(retention) * 1000
for n = 0, (#KEYS - 3) / 3 - 1 do
  local dlv, attempts, owned = KEYS[4 + 3 * n], KEYS[5 + 3 * n], KEYS[6 + 3 * n]
  local a = base + 4 * n
  local id, outcome, entry, delay = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local f = redis.call('HMGET', dlv, 'status', 'lease')
  if f[1] then
    if entry ~= '' then
      redis.call('RPUSH', attempts, entry)
      redis.call('LTRIM', attempts, -kept, -1)
    end
    local final = nil
    if outcome == 'delivered' and f[1] == 'pending' then
      redis.call('HSET', dlv, 'status', 'delivered', 'done_ms', now)
      final = true
    elseif f[1] ~= 'pending' or f[2] ~= token then
      final = false
    elseif outcome == 'failed' then
      redis.call('HSET', dlv, 'status', 'failed', 'done_ms', now)
      for _, index in ipairs({KEYS[3], owned}) do
        redis.call('ZADD', index, now, id)
        redis.call('ZREMRANGEBYSCORE', index, '-inf', oldest)
      end
      final = true
    else
      redis.call('HSET', dlv, 'next_ms', now + delay)
      redis.call('HDEL', dlv, 'lease', 'lease_until')
      redis.call('ZADD', KEYS[1], now + delay, id)
    end
    if final ~= false then
      if outcome ~= 'deferred' then redis.call('HINCRBY', dlv, 'attempt_count', 1) end
      if final then
        redis.call('HDEL', dlv, 'lease', 'lease_until', 'next_ms')
        if outcome == 'delivered' then redis.call('HDEL', dlv, 'body') end
        redis.call('ZREM', KEYS[1], id)
        redis.call('EXPIRE', dlv, retention)
        redis.call('EXPIRE', attempts, retention)
      end
    end
  end
end
return 1
"""
)

# KEYS: dlv, attempts, due, all failures, the owner's failures. ARGV: id. A failed delivery
# starts over with a full schedule (and leaves the failure indexes).
_RETRY = (
    _NOW
    + """
if redis.call('HGET', KEYS[1], 'status') ~= 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'pending', 'attempt_count', 0, 'next_ms', now)
redis.call('HDEL', KEYS[1], 'done_ms', 'digest')
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
"""
)

# KEYS: alive, due, dlv... ARGV: ttl_ms, token, id... A worker's heartbeat: it keeps the
# process's key alive and pushes the leases it still holds under ``token`` one TTL ahead.
RENEW = (
    _NOW
    + """
local ttl = tonumber(ARGV[1])
redis.call('SET', KEYS[1], '1', 'PX', ttl)
for n = 3, #KEYS do
  local f = redis.call('HMGET', KEYS[n], 'status', 'lease')
  if f[1] == 'pending' and f[2] == ARGV[2] then
    redis.call('HSET', KEYS[n], 'lease_until', now + ttl)
    redis.call('ZADD', KEYS[2], now + ttl, ARGV[n])
  end
end
return 1
"""
)

# KEYS: alive, due, dlv... ARGV: ttl_ms, id... The heartbeat of a Celery worker's main
# process for the deliveries of tasks it has received but no pool process has claimed
# yet: they fall due one TTL after it dies, not a whole lease. Returns, per id, 1 while
# it is still only reserved, 0 once it is claimed, final or waiting for a retry time.
RESERVE = (
    _NOW
    + """
local ttl = tonumber(ARGV[1])
redis.call('SET', KEYS[1], '1', 'PX', ttl)
local out = {}
for n = 3, #KEYS do
  local f = redis.call('HMGET', KEYS[n], 'status', 'lease_until', 'next_ms')
  if f[1] ~= 'pending' or (f[2] and tonumber(f[2]) > now)
      or (f[3] and tonumber(f[3]) > now) then
    out[n - 2] = 0
  else
    redis.call('ZADD', KEYS[2], now + ttl, ARGV[n - 1])
    out[n - 2] = 1
  end
end
return out
"""
)

# KEYS: due. ARGV: count, lease_ms. Takes due ids and pushes them a lease ahead, so
# concurrent sweepers never hand out the same id twice.
_SWEEP = (
    _NOW
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id) end
return ids
"""
)

# KEYS: target key. ARGV: rate per second, burst, wanted. GCRA: returns {granted, wait_ms}.
_RATE = (
    _NOW
    + """
local interval = 1000 / tonumber(ARGV[1])
local burst = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local granted = math.floor((now + burst - tat) / interval)
if granted < 0 then granted = 0 end
if granted > tonumber(ARGV[3]) then granted = tonumber(ARGV[3]) end
tat = tat + granted * interval
if granted > 0 then
  redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now + burst) + 1000)
end
local wait = math.ceil(tat + interval - burst - now)
if wait < 0 then wait = 0 end
return {granted, wait}
"""
)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    subscription: str
    user: str
    kind: str
    event_id: str
    body: bytes
    attempts_before: int


@dataclass(frozen=True, slots=True)
class Finish:
    id: str
    outcome: str  # delivered | retry | failed | deferred
    attempt: dict[str, Any] | None
    delay_s: float = 0.0


@translating
class Ledger:
    """``lease_s`` is how long a record waits for its task before the sweeper sends it
    again (a task lost with the broker); ``hold_s`` how long a claim holds unless the
    claiming process's heartbeat renews it (notify.redis.heartbeat), by default as long."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        lease_s: float,
        retention_s: int,
        hold_s: float | None = None,
    ) -> None:
        self._redis = redis
        self._lease_ms = int(lease_s * 1000)
        self._hold_ms = int((lease_s if hold_s is None else hold_s) * 1000)
        self._retention_s = retention_s
        self._create = redis.register_script(_CREATE)
        self._claim = redis.register_script(_CLAIM)
        self._finish = redis.register_script(_FINISH)
        self._retry = redis.register_script(_RETRY)
        self._sweep = redis.register_script(_SWEEP)
        self._rate = redis.register_script(_RATE)

    async def create(
        self,
        items: Sequence[tuple[Delivery, str, str, bytes]],
        *,
        replay: bool = False,
    ) -> list[str]:
        """Create-if-absent one record per (delivery, channel, type, envelope); return the
        ids that need a task (new, reset by a replay, or still pending)."""
        if not items:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for d, channel, type_, body in items:
            await self._create(
                keys=[
                    keys.delivery(d.id),
                    keys.delivery_attempts(d.id),
                    keys.subscription_deliveries(d.subscription),
                    keys.RETRY_DUE,
                ],
                args=[
                    d.id, d.subscription, d.user, d.kind, d.event_id, channel, type_, body,
                    self._lease_ms, self._retention_s * 1000, "1" if replay else "0",
                ],
                client=pipe,
            )  # fmt: skip
        results = await pipe.execute()
        return [item[0].id for item, r in zip(items, results, strict=True) if int(r) in (1, 2)]

    async def claim(self, ids: Sequence[str], token: str) -> list[Claimed]:
        """Lease every id that is pending, due and not leased elsewhere (one round trip)."""
        if not ids:
            return []
        replies = await self._claim(
            keys=[keys.RETRY_DUE, *(keys.delivery(i) for i in ids)],
            args=[self._hold_ms, token, *ids],
        )
        out: list[Claimed] = []
        for i, r in zip(ids, replies, strict=True):
            if int(r[0]) == 1:
                sub, user, kind, event_id, body, count = r[1:]
                raw = body if isinstance(body, bytes) else str(body).encode()
                out.append(
                    Claimed(i, text(sub), text(user), text(kind), text(event_id), raw, int(count))
                )
        return out

    async def finish(
        self,
        token: str,
        results: Sequence[Finish],
        metrics: dict[str, int] | None = None,
        owners: Mapping[str, str] | None = None,
    ) -> None:
        """Record outcomes and attempts, and count ``metrics`` (one round trip);
        ``owners`` names each delivery's user, for the failure indexes."""
        owners = owners or {}
        counts = metrics or {}
        if not results and not counts:
            return
        keys_: list[str] = [keys.RETRY_DUE, keys.DELIVERY_METRICS, keys.FAILED_DELIVERIES]
        args: list[bytes | str | int] = [token, self._retention_s, MAX_ATTEMPTS_KEPT, len(counts)]
        for name, n in counts.items():
            args += [name, n]
        for f in results:
            owner = keys.user_failed_deliveries(owners.get(f.id, ""))
            keys_ += [keys.delivery(f.id), keys.delivery_attempts(f.id), owner]
            entry = orjson.dumps(f.attempt) if f.attempt else ""
            args += [f.id, f.outcome, entry, int(f.delay_s * 1000)]
        await self._finish(keys=keys_, args=args)

    async def retry(self, delivery_id: str, user: str) -> bool:
        done = await self._retry(
            keys=[
                keys.delivery(delivery_id),
                keys.delivery_attempts(delivery_id),
                keys.RETRY_DUE,
                keys.FAILED_DELIVERIES,
                keys.user_failed_deliveries(user),
            ],
            args=[delivery_id],
        )
        return bool(done)

    async def sweep(self, count: int) -> list[str]:
        ids = await self._sweep(keys=[keys.RETRY_DUE], args=[count, self._lease_ms])
        return [text(i) for i in ids]

    async def acquire(self, target: str, rate: float, wanted: int) -> tuple[int, float]:
        """Take up to ``wanted`` requests from the target's shared budget (bursts of
        twice the rate); return how many were granted and seconds until the next one."""
        granted, wait_ms = await self._rate(
            keys=[keys.target_rate(target)], args=[rate, max(2 * rate, 1), wanted]
        )
        return int(granted), int(wait_ms) / 1000

    async def get(self, delivery_id: str) -> dict[str, Any] | None:
        found = await self.get_many([delivery_id])
        return found[0] if found else None

    async def get_many(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        pipe = self._redis.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(keys.delivery(i))
            pipe.lrange(keys.delivery_attempts(i), 0, -1)
        replies = await pipe.execute()
        out = []
        for n in range(0, len(replies), 2):
            fields, attempts = replies[n], replies[n + 1]
            if fields:
                out.append(view({text(k): v for k, v in fields.items()}, attempts))
        return out

    async def page(
        self, subscription_id: str, *, before: tuple[int, str] | None, count: int
    ) -> list[tuple[int, str]]:
        """(created_ms, id) of a subscription's deliveries, newest first, after a cursor."""
        return await self.page_of(
            keys.subscription_deliveries(subscription_id), before=before, count=count
        )

    async def failures(
        self, user: str | None, *, before: tuple[int, str] | None, count: int
    ) -> list[tuple[int, str]]:
        """(failed_ms, id) of the deliveries that ended failed, newest first: one user's,
        or everyone's (``user`` None). Candidates: check each record's status."""
        key = keys.FAILED_DELIVERIES if user is None else keys.user_failed_deliveries(user)
        return await self.page_of(key, before=before, count=count)

    async def page_of(
        self, key: str, *, before: tuple[int, str] | None, count: int
    ) -> list[tuple[int, str]]:
        top: str | int = "+inf" if before is None else before[0]
        rows: Any = await self._redis.zrevrangebyscore(
            key,
            top,
            "-inf",
            start=0,
            num=count + 64,
            withscores=True,
        )
        out = []
        for member, score in rows:
            item = (int(score), text(member))
            # members that share the cursor's millisecond sort by id, descending
            if before is None or item < before:
                out.append(item)
        return out[:count]


def view(fields: dict[str, Any], attempts: Sequence[Any]) -> dict[str, Any]:
    """The API view of a stored delivery."""
    next_ms = fields.get("next_ms")
    status = text(fields["status"])
    return {
        "id": text(fields["id"]),
        "subscription": text(fields["subscription"]),
        "user": text(fields["user"]),
        "kind": text(fields["kind"]),
        "event_id": text(fields["event_id"]),
        "channel": text(fields["channel"]),
        "type": text(fields["type"]),
        "status": status,
        "attempts": [orjson.loads(a) for a in attempts],
        "next_attempt_at": iso(int(next_ms)) if next_ms and status == "pending" else None,
        "created_at": iso(int(fields["created_ms"])),
        "finished_at": iso(int(fields["done_ms"])) if fields.get("done_ms") else None,
    }


def iso(ms: int) -> str:
    return as_datetime(ms / 1000).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
