"""The monitoring sink: events as alerts, POSTed to Prometheus Alertmanager (API v2).

Each delivery records the alert's new state first (``notify.alerts.decide``: an event
older than the recorded one is dropped as superseded), then POSTs the one alert to
``{url}/api/v2/alerts``. The dispatcher's AlertResender re-POSTs firing alerts from
that record so Alertmanager does not resolve them by its ``resolve_timeout``.
Connections go through the same guarded HTTP pool as webhooks (``notify.sinks.http``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from notify import alerts, ssrf
from notify.errors import PermanentDeliveryError, TransientDeliveryError
from notify.events import now_rfc3339
from notify.redis.alertbook import AlertBook
from notify.retry import parse_retry_after
from notify.sinks.base import RESPONSE_EXCERPT, Job, Receipt
from notify.sinks.http import HttpClientError, HttpPool, TargetRefused

USER_AGENT = "notify-alerts/1.0"
_CAS_TRIES = 8


class AlertmanagerClient:
    def __init__(
        self,
        *,
        timeout: float,
        allow_private: bool,
        max_connections: int = 20,
        allowed: ssrf.AllowList = ssrf.NOTHING,
    ) -> None:
        self._timeout = timeout
        self._pool = HttpPool(
            allow_private=allow_private,
            max_connections=max_connections,
            keepalive_expiry=30,
            allowed=allowed,
        )

    async def post(self, url: str, batch: Sequence[dict[str, Any]]) -> Receipt:
        """POST alerts; 2xx is a Receipt, 4xx (but 408/429) permanent, the rest transient."""
        fields = (("content-type", "application/json"), ("user-agent", USER_AGENT))
        try:
            async with asyncio.timeout(self._timeout):
                answer = await self._pool.post(
                    alerts.endpoint(url), fields, orjson.dumps(list(batch)), RESPONSE_EXCERPT
                )
        except TimeoutError as exc:
            raise TransientDeliveryError(f"timed out after {self._timeout:g} s") from exc
        except TargetRefused as exc:
            raise PermanentDeliveryError(str(exc)) from exc
        except ValueError as exc:
            raise PermanentDeliveryError(f"not a usable Alertmanager URL: {exc}") from exc
        except (OSError, HttpClientError) as exc:
            raise TransientDeliveryError(f"{type(exc).__name__}: {exc}"[:200]) from exc
        status = answer.status
        excerpt = answer.body.decode("utf-8", "replace") or None
        if 200 <= status < 300:
            return Receipt(status, excerpt)
        detail = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
        if 400 <= status < 500 and status not in (408, 429):
            raise PermanentDeliveryError(detail, status_code=status)
        # an HTTP date counts from now (from 0.0 a date 2 s ahead meant 56 years, capped
        # at a day)
        retry_after = parse_retry_after(answer.headers.get("retry-after"), time.time())
        raise TransientDeliveryError(detail, status_code=status, retry_after=retry_after)

    async def aclose(self) -> None:
        await self._pool.aclose()


class MonitoringSink:
    kind = "monitoring"

    def __init__(self, client: AlertmanagerClient, book: AlertBook) -> None:
        self._client = client
        self._book = book

    def target(self, job: Job) -> str | None:
        parts = urlsplit(str(job.subscription.sink["url"]))
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"

    async def deliver(self, job: Job) -> Receipt:
        sub = job.subscription
        url = str(sub.sink["url"])
        event = orjson.loads(job.event)
        seen = alerts.observe(event, subscription=sub.id, user=sub.user, now=now_rfc3339())
        for _ in range(_CAS_TRIES):
            found = await self._book.get(seen.key)
            raw, previous = found if found else (None, None)
            record = alerts.decide(previous, seen, subscription=sub.id, url=url)
            if record is None:
                later = previous["event"] if previous else "?"
                return Receipt(None, f"superseded by event {later}; not sent")
            if await self._book.put(seen.key, raw, record):
                break
        else:
            raise TransientDeliveryError("the alert is being changed concurrently")
        return await self._client.post(url, [record["alert"]])

    async def aclose(self) -> None:
        await self._client.aclose()
