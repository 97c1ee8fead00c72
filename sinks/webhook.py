"""The webhook sink: a signed POST of the event, per Standard Webhooks.

One httpx client per worker process keeps connections alive per target. Redirects
are not followed, the whole attempt (connect, send, read) has one deadline, and at
most MAX_READ bytes of an answer are read, so a receiver that drips, floods or never
closes costs a worker one timeout and nothing more.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import httpx

from notify import webhooks
from notify.errors import PermanentDeliveryError, TargetGone, TransientDeliveryError
from notify.retry import parse_retry_after
from sinks.base import RESPONSE_EXCERPT, Job, Receipt
from sinks.transport import GuardedTransport, TargetRefused

MAX_READ = 64 * 1024
USER_AGENT = "notify-webhooks/1.0"


class WebhookSink:
    kind = "webhook"

    def __init__(self, *, timeout: float, allow_private: bool, max_connections: int = 100) -> None:
        self._timeout = timeout
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30,
        )
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(allow_private=allow_private, limits=limits),
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(timeout),
            headers={"user-agent": USER_AGENT},
        )

    def target(self, job: Job) -> str | None:
        parts = urlsplit(str(job.subscription.sink["url"]))
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"

    async def deliver(self, job: Job) -> Receipt:
        now = time.time()
        secrets = job.subscription.signing_secrets(now)
        if not secrets:
            raise PermanentDeliveryError("the subscription has no valid signing secret")
        headers = webhooks.headers(secrets, job.delivery_id, int(now), job.event)
        url = str(job.subscription.sink["url"])
        try:
            async with asyncio.timeout(self._timeout):
                request = self._client.build_request(
                    "POST", url, content=job.event, headers=headers
                )
                response = await self._client.send(request, stream=True)
                try:
                    head = await read_capped(response)
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            raise TransientDeliveryError(f"timed out after {self._timeout:g} s") from exc
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError(f"timed out: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            if isinstance(exc.__cause__, TargetRefused):
                raise PermanentDeliveryError(str(exc.__cause__)) from exc
            raise TransientDeliveryError(f"{type(exc).__name__}: {exc}"[:200]) from exc
        return judge(response.status_code, response.headers.get("retry-after"), head, now)

    async def aclose(self) -> None:
        await self._client.aclose()


async def read_capped(response: httpx.Response) -> bytes:
    got = bytearray()
    async for chunk in response.aiter_raw():
        got += chunk
        if len(got) >= MAX_READ:
            break  # the rest is dropped with the connection
    return bytes(got)


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
