"""The alert re-sender: keeps firing alerts alive in Alertmanager.

Alertmanager resolves an alert without ``endsAt`` once ``resolve_timeout`` (5 min by
default) passes without it being posted again. This loop, run in every dispatcher
process, re-posts each firing alert every NOTIFY_ALERT_RESEND_SECONDS until it is
resolved, older than NOTIFY_ALERT_MAX_AGE_SECONDS, or its subscription is gone,
disabled or pointed elsewhere. ``AlertBook.take`` hands each due alert to one process.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from notify.errors import DeliveryError
from notify.redis.alertbook import AlertBook
from notify.redis.client import Client
from notify.redis.subscriptions import SubscriptionStore
from notify.settings import Settings
from notify.sinks.monitoring import AlertmanagerClient

log = logging.getLogger("notify.dispatcher")

TAKE_COUNT = 500


class AlertResender:
    def __init__(self, settings: Settings, redis: Client) -> None:
        self._settings = settings
        self._subs = SubscriptionStore(redis)
        self._book = AlertBook(redis, resend_s=settings.alert_resend_seconds)
        self._client = AlertmanagerClient(
            timeout=settings.webhook_timeout_seconds,
            allow_private=settings.allow_private_targets,
            allowed=settings.private_targets,
        )
        self._idle = min(settings.alert_resend_seconds / 4, 1.0)

    async def step(self) -> int:
        taken = await self._book.take(
            TAKE_COUNT,
            max_age_s=self._settings.alert_max_age_seconds,
            keep_s=self._settings.delivery_retention_seconds,
        )
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if taken:
            subs = await self._subs.get_many(sorted({r["subscription"] for r in taken}))
            for record in taken:
                sub = subs.get(record["subscription"])
                if sub is None or not sub.enabled or sub.sink.get("url") != record["url"]:
                    await self._book.forget(record["key"])
                    continue
                groups[record["url"]].append(record["alert"])
            await asyncio.gather(*(self._post(url, batch) for url, batch in groups.items()))
        if len(taken) < TAKE_COUNT:
            await asyncio.sleep(self._idle)
        return sum(len(b) for b in groups.values())

    async def _post(self, url: str, batch: list[dict[str, Any]]) -> None:
        try:
            await self._client.post(url, batch)
        except DeliveryError as exc:
            # the next round tries again; Alertmanager keeps the alert meanwhile
            log.warning("re-sending %d alerts to %s failed: %s", len(batch), url, exc.detail)

    async def aclose(self) -> None:
        await self._client.aclose()
