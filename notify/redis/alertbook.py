"""The Redis adapter for the alerts notify keeps alive in Alertmanager.

``keys.ALERTS`` holds each alert's last recorded state (``notify.alerts.decide``);
``keys.ALERTS_DUE`` says when each is next due. ``take`` hands due alerts to one
re-sender (it pushes them ahead atomically, as the delivery sweeper does): a firing
alert comes back every ``NOTIFY_ALERT_RESEND_SECONDS`` until it is resolved or older
than ``NOTIFY_ALERT_MAX_AGE_SECONDS``; a resolution is re-sent once (in case a late
firing POST overtook it), then kept, unsent, for the delivery retention so that a
retry of an older firing event still finds it newer and is dropped.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from notify import keys
from notify.redis.errors import translating
from notify.redis.ledger import _NOW
from notify.redis.subscriptions import text

# KEYS: alerts, due. ARGV: key, expected ('' = absent), new, due_ms. Compare and set.
_PUT = (
    _NOW
    + """
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
return 1
"""
)

# KEYS: alerts, due. ARGV: count, resend_ms, max_age_ms, keep_ms. The alerts to re-send.
_TAKE = (
    _NOW
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[1], id)
  local rec = raw and cjson.decode(raw)
  if not rec or rec['resent'] or (rec['state'] == 'firing'
      and now - tonumber(rec['since_ms']) > tonumber(ARGV[3])) then
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
  elseif rec['state'] == 'firing' then
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), id)
    table.insert(out, raw)
  else
    rec['resent'] = true
    redis.call('HSET', KEYS[1], id, cjson.encode(rec))
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), id)
    table.insert(out, raw)
  end
end
return out
"""
)


@translating
class AlertBook:
    def __init__(self, redis: aioredis.Redis, *, resend_s: float) -> None:
        self._redis = redis
        self._resend_ms = int(resend_s * 1000)
        self._put = redis.register_script(_PUT)
        self._take = redis.register_script(_TAKE)

    async def get(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        """The alert's recorded state, raw (for ``put``) and decoded."""
        raw = await self._redis.hget(keys.ALERTS, key)
        if raw is None:
            return None
        value = raw if isinstance(raw, bytes) else str(raw).encode()
        decoded: dict[str, Any] = orjson.loads(value)
        return value, decoded

    async def put(self, key: str, expected: bytes | None, record: dict[str, Any]) -> bool:
        """Record a state if the alert still has ``expected``; due for re-sending in
        one interval (a resolution too: it is re-sent once)."""
        done = await self._put(
            keys=[keys.ALERTS, keys.ALERTS_DUE],
            args=[key, expected or b"", orjson.dumps(record), self._resend_ms],
        )
        return bool(done)

    async def take(self, count: int, *, max_age_s: float, keep_s: float) -> list[dict[str, Any]]:
        raws: Any = await self._take(
            keys=[keys.ALERTS, keys.ALERTS_DUE],
            args=[count, self._resend_ms, int(max_age_s * 1000), int(keep_s * 1000)],
        )
        return [orjson.loads(text(r)) for r in raws]

    async def forget(self, key: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hdel(keys.ALERTS, key)
        pipe.zrem(keys.ALERTS_DUE, key)
        await pipe.execute()
