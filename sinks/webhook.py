"""The webhook sink: a signed POST of the event, per Standard Webhooks.

The body is the subscription's format of the event (notify.formats); the signature
covers that body exactly as sent. An event that carries a trace sends its
``traceparent`` header too (notify.tracing). A template that fails to render fails the delivery
with its reason: it would fail the same way on every retry.

One HTTP/1.1 pool per worker process (``notify.sinks.http.HttpPool``) keeps connections
alive per target and connects only to addresses the SSRF guard allowed. Redirects
are not followed, the whole attempt (connect, send, read) has one deadline, and at
most MAX_READ bytes of an answer are read, so a receiver that drips, floods or never
closes costs a worker one timeout and nothing more.
"""

from __future__ import annotations

import asyncio
import time

from notify import formats, ssrf, tracing, webhooks
from notify.errors import PermanentDeliveryError, TargetGone, TransientDeliveryError
from notify.events import stored_traceparent
from notify.retry import parse_retry_after
from notify.sinks.base import RESPONSE_EXCERPT, Job, Receipt
from notify.sinks.http import HttpClientError, HttpPool, Proxy, TargetRefused
from notify.templating import TemplateError

MAX_READ = 64 * 1024
USER_AGENT = "notify-webhooks/1.0"


class WebhookSink:
    kind = "webhook"

    def __init__(
        self,
        *,
        timeout: float,
        allow_private: bool,
        max_connections: int = 100,
        proxy: Proxy | None = None,
        allowed: ssrf.AllowList = ssrf.NOTHING,
    ) -> None:
        self._timeout = timeout
        self._pool = HttpPool(
            allow_private=allow_private,
            max_connections=max_connections,
            keepalive_expiry=30,
            proxy=proxy,
            allowed=allowed,
        )

    def target(self, job: Job) -> str | None:
        try:
            return self._pool.origin(str(job.subscription.sink["url"])).key
        except ValueError:
            return None  # deliver() reports it

    async def deliver(self, job: Job) -> Receipt:
        now = time.time()
        secrets = job.subscription.signing_secrets(now)
        if not secrets:
            raise PermanentDeliveryError("the subscription has no valid signing secret")
        sink = job.subscription.sink
        try:
            body = formats.render_body(sink, job.event)
        except TemplateError as exc:
            raise PermanentDeliveryError(f"template: {exc}"[:RESPONSE_EXCERPT]) from exc
        headers = webhooks.headers(secrets, job.delivery_id, int(now), body.content)
        headers["content-type"] = body.content_type
        headers["user-agent"] = USER_AGENT
        # W3C Trace Context for the receiver: the delivery span's while tracing, else
        # the event's stored traceparent as the producer gave it (not signed: a header)
        traceparent = tracing.outgoing(stored_traceparent(job.event))
        if traceparent is not None:
            headers["traceparent"] = traceparent
        url = str(sink["url"])
        try:
            async with asyncio.timeout(self._timeout):
                answer = await self._pool.post(url, headers.items(), body.content, MAX_READ)
        except TimeoutError as exc:
            raise TransientDeliveryError(f"timed out after {self._timeout:g} s") from exc
        except TargetRefused as exc:
            raise PermanentDeliveryError(str(exc)) from exc
        except (OSError, HttpClientError, ValueError) as exc:
            raise TransientDeliveryError(f"{type(exc).__name__}: {exc}"[:200]) from exc
        return judge(answer.status, answer.headers.get("retry-after"), answer.body, now)

    async def aclose(self) -> None:
        await self._pool.aclose()


def judge(status: int, retry_after: str | None, body: bytes, now: float) -> Receipt:
    """What an HTTP answer means for the delivery."""
    excerpt = body[:RESPONSE_EXCERPT].decode("utf-8", "replace") or None
    if 200 <= status < 300:
        return Receipt(status, excerpt)
    detail = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
    if status == 410:
        raise TargetGone(detail, status_code=status)
    if status in (429, 503):
        raise TransientDeliveryError(
            detail, status_code=status, retry_after=parse_retry_after(retry_after, now)
        )
    # redirects are not followed and count as failures, like any other status
    raise TransientDeliveryError(detail, status_code=status)
