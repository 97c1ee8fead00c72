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
from notify.redis import scripts
from notify.redis.errors import translating
from notify.redis.subscriptions import text


@translating
class AlertBook:
    def __init__(self, redis: aioredis.Redis, *, resend_s: float) -> None:
        self._redis = redis
        self._resend_ms = int(resend_s * 1000)
        self._put = redis.register_script(scripts.source("alert_put"))
        self._take = redis.register_script(scripts.source("alert_take"))

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
