"""The Celery app, configured from Settings.

The broker is the same Redis as everything else (a Sentinel-managed one through kombu's
Sentinel transport), its keys under ``keys.CELERY_PREFIX``, or RabbitMQ when
``NOTIFY_BROKER_URL`` is an ``amqp://`` URL (Redis stays the store).
Tasks are acknowledged late and handed back when a worker process dies, one message
is reserved per process at a time, and results are not stored: the delivery record
in Redis is the result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from celery import Celery

from notify import keys
from notify.redisurl import celery_broker, parse_redis_url
from notify.settings import Settings, load

DELIVER = "notify.deliver"
QUEUE = "notify.deliveries"


def broker(settings: Settings) -> tuple[str, dict[str, Any]]:
    """Celery's broker URL and transport options."""
    if settings.broker_url:
        # RabbitMQ hands back a dead consumer's unacknowledged messages as soon as its
        # connection drops: no visibility timeout to wait out
        return settings.broker_url, {}
    url, options = celery_broker(parse_redis_url(settings.redis_url))
    options |= {
        # a task runs for at most one delivery lease; the visibility timeout only
        # has to outlive that, and the due set recovers anything it misses
        "visibility_timeout": settings.broker_visibility_seconds,
        "global_keyprefix": keys.CELERY_PREFIX,
    }
    if "master_name" in options:
        timeout = settings.redis_timeout_seconds
        options["sentinel_kwargs"] = {"socket_timeout": timeout}
    return url, options


def create_app(settings: Settings) -> Celery:
    url, transport_options = broker(settings)
    app = Celery("notify", broker=url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options,
        worker_hijack_root_logger=False,
        # NOTIFY_CELERY_TASK_EVENTS: events for Flower and `celery events` (off: at
        # thousands of tasks a second they cost the broker as much as the tasks)
        worker_send_task_events=settings.celery_task_events,
        task_send_sent_event=settings.celery_task_events,
    )
    return app


def __getattr__(name: str) -> Any:
    """``celery -A notify.workers.celery_app status|inspect|events`` (and Flower): the
    app configured from the environment, made on first use so that importing this
    module reads no settings."""
    if name not in ("app", "celery"):
        raise AttributeError(name)
    global _app
    if _app is None:
        from notify.workers.tasks import register

        settings = load()
        _app = create_app(settings)
        register(_app, settings)
    return _app


_app: Celery | None = None


class Enqueuer:
    """Sends delivery batches to the broker (blocking: call it from one thread)."""

    def __init__(self, app: Celery, batch_size: int) -> None:
        self._app = app
        self._batch = batch_size

    def __call__(self, ids: Sequence[str]) -> int:
        sent = 0
        for start in range(0, len(ids), self._batch):
            chunk = list(ids[start : start + self._batch])
            self._app.send_task(DELIVER, args=[chunk], queue=QUEUE)
            sent += 1
        return sent


def new_loop() -> asyncio.AbstractEventLoop:
    """The event loop for worker and dispatcher processes: uvloop when installed."""
    try:
        import uvloop
    except ImportError:  # uvloop is an optional speed-up
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
