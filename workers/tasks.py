"""Celery tasks: thin shells around the Deliverer.

Each worker process builds its own runtime on first use, after the fork: an event
loop, a Redis client, a heartbeat thread that renews the leases in hand, tracing when
it is on (notify.tracing), and the sinks
(with their keep-alive HTTP pool) that live as long as the process, so connections are
reused across tasks.
"""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import worker_process_shutdown

from notify import tracing
from notify.proxy import Proxy
from notify.redis.alertbook import AlertBook
from notify.redis.client import Client, connect
from notify.redis.digests import DigestStore
from notify.redis.heartbeat import LeaseKeeper, process_name
from notify.redis.ledger import Ledger
from notify.redis.subscriptions import SubscriptionStore
from notify.settings import Settings
from notify.sinks import email
from notify.sinks.base import Sink
from notify.sinks.monitoring import AlertmanagerClient, MonitoringSink
from notify.sinks.web import WebSink
from notify.sinks.webhook import WebhookSink
from notify.smtpurl import parse_sender, parse_smtp_url
from notify.unsubscribe import key_from
from notify.workers.celery_app import DELIVER, new_loop
from notify.workers.deliverer import Deliverer

log = logging.getLogger("notify.worker")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        # httpx logs every request at INFO: far too much at a thousand a second
        logging.getLogger("httpx").setLevel(logging.WARNING)
        # here, after the fork: the span exporter's thread must be this process's own
        tracing.setup("worker")
        self.pid = os.getpid()
        self.loop = new_loop()
        self.redis = connect(settings.redis_url)
        self.keeper = LeaseKeeper(settings.redis_url, process_name(), settings.heartbeat_seconds)
        self.keeper.start()
        sinks: dict[str, Sink] = {
            "web": WebSink(),
            "webhook": WebhookSink(
                timeout=settings.webhook_timeout_seconds,
                allow_private=settings.allow_private_targets,
                max_connections=settings.webhook_max_connections,
                proxy=Proxy.parse(settings.webhook_proxy) if settings.webhook_proxy else None,
                allowed=settings.private_targets,
            ),
            "monitoring": MonitoringSink(
                AlertmanagerClient(
                    timeout=settings.webhook_timeout_seconds,
                    allow_private=settings.allow_private_targets,
                    allowed=settings.private_targets,
                ),
                AlertBook(self.redis, resend_s=settings.alert_resend_seconds),
            ),
        }
        mailer = email_sink(settings, self.redis)
        if mailer is not None:
            sinks["email"] = mailer
        self.deliverer = Deliverer(
            settings,
            Ledger(
                self.redis,
                lease_s=settings.delivery_lease_seconds,
                retention_s=settings.delivery_retention_seconds,
                hold_s=settings.heartbeat_seconds,
            ),
            SubscriptionStore(self.redis),
            sinks,
            self.keeper,
        )

    def deliver(self, ids: list[str]) -> None:
        counts = self.loop.run_until_complete(self.deliverer.run(ids))
        log.debug("batch of %d: %s", len(ids), dict(counts))


def email_sink(settings: Settings, redis: Client) -> email.EmailSink | None:
    """The email sink, or None (with a warning) when no secret can sign unsubscribe
    links: its deliveries then wait for a worker that has one."""
    key = key_from(
        settings.unsubscribe_secret.get_secret_value() if settings.unsubscribe_secret else None,
        settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
    )
    if key is None:
        log.warning(
            "email deliveries are left to other workers: set NOTIFY_JWT_SECRET or "
            "NOTIFY_UNSUBSCRIBE_SECRET to sign unsubscribe links"
        )
        return None
    return email.build(
        target=parse_smtp_url(settings.smtp_url.get_secret_value()),
        sender=parse_sender(settings.email_from),
        templates_dir=settings.email_templates,
        public_url=settings.public_url,
        unsubscribe_key=key,
        digests=DigestStore(
            redis,
            transit_s=settings.heartbeat_seconds,
            retention_s=settings.delivery_retention_seconds,
        ),
        timeout=settings.smtp_timeout,
        max_connections=settings.smtp_max_connections,
        digest_max_events=settings.digest_max_events,
    )


_runtime: Runtime | None = None


def runtime(settings: Settings) -> Runtime:
    global _runtime
    # a runtime inherited through fork shares sockets with the parent: build anew
    if _runtime is None or _runtime.pid != os.getpid():
        _runtime = Runtime(settings)
    return _runtime


def register(app: Celery, settings: Settings) -> None:
    # a pool process may leave by os._exit, past atexit: export its last spans first
    worker_process_shutdown.connect(lambda **_: tracing.shutdown(), weak=False)

    @app.task(name=DELIVER, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def deliver(ids: list[str]) -> None:
        # a failure here leaves the deliveries in the due set: the sweeper re-sends them
        runtime(settings).deliver([str(i) for i in ids])
