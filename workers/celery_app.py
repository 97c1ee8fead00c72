"""The Celery app, configured from Settings.

The broker is the same Redis as everything else, its keys under ``keys.CELERY_PREFIX``.
Tasks are acknowledged late and handed back when a worker process dies, one message
is reserved per process at a time, and results are not stored: the delivery record
in Redis is the result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from celery import Celery

from notify import keys
from notify.settings import Settings

DELIVER = "notify.deliver"
QUEUE = "notify.deliveries"


def create_app(settings: Settings) -> Celery:
    app = Celery("notify", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            # a task runs for at most one delivery lease; the visibility timeout only
            # has to outlive that, and the due set recovers anything it misses
            "visibility_timeout": settings.broker_visibility_seconds,
            "global_keyprefix": keys.CELERY_PREFIX,
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


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
