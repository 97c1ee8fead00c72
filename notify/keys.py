"""Every Redis key notify uses, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from notify import shards

PREFIX = "notify:{n}:"
"""One hash tag for every key: multi-key Lua scripts work on Redis Cluster too."""

LOG = PREFIX + "log"
"""The global event log (a Redis stream); every event takes its id here."""


LIMITS = PREFIX + "limits"
"""Hash: the retention and event size the gateways use (history_seconds,
history_max_events, channel_history_max_events, max_event_bytes); written by each
gateway at start, read by ``notify.Publisher`` so that producers trim as they do."""


def channel_stream(channel: str) -> str:
    """Per-channel stream holding the channel's events under their log ids (one shard)."""
    return f"{PREFIX}ch:{channel}"


SHARDS = PREFIX + "shards"
"""String: the number of shards the event log was written with (``NOTIFY_SHARDS``);
set by the first role to start, and a role configured otherwise refuses to start."""


@dataclass(frozen=True, slots=True)
class Shard:
    """The keys of one shard of the event log: its log, its channels' streams and its
    idempotency records, all under the shard's own hash tag (see notify.shards). Shard
    0 of 1 is :data:`LOG` and :func:`channel_stream`, as before sharding."""

    index: int
    count: int
    prefix: str

    @property
    def log(self) -> str:
        return self.prefix + "log"

    @property
    def channel_prefix(self) -> str:
        return self.prefix + "ch:"

    def channel_stream(self, channel: str) -> str:
        return self.prefix + "ch:" + channel

    def idempotency(self, key: str) -> str:
        """An idempotency record (:func:`idempotency`) moved under this shard's tag."""
        return self.prefix + key.removeprefix(PREFIX)


def shard(index: int, count: int) -> Shard:
    return Shard(index, count, "notify:{" + shards.tag(index, count) + "}:")


def all_shards(count: int) -> list[Shard]:
    return [shard(i, count) for i in range(count)]


def idempotency(subject: str, key: str) -> str:
    """A publish's answer kept for its retries. The subject's length comes first so
    that no (subject, key) pair can name another's record (``alice:x`` + ``k`` and
    ``alice`` + ``x:k`` differ)."""
    return f"{PREFIX}idem:{len(subject)}:{subject}:{key}"


def publish_rate(subject: str) -> str:
    return f"{PREFIX}rate:pub:{subject}"


def open_streams(subject: str) -> str:
    """Sorted set of a subject's open streams (SSE, feed, WebSocket) on every gateway,
    scored by when their lease runs out."""
    return f"{PREFIX}streams:{subject}"


def auth_failures(address: str) -> str:
    """Failed authentications from one client address in the current minute."""
    return f"{PREFIX}authfail:{address}"


DISPATCH_GROUP = "dispatchers"
"""Consumer group on LOG read by the dispatchers."""

SUBSCRIPTIONS = PREFIX + "subs"
"""Hash: subscription id -> subscription JSON."""


def user_subscriptions(user: str) -> str:
    """Set of a user's subscription ids."""
    return f"{PREFIX}user-subs:{user}"


SUBSCRIPTION_CHANGES = PREFIX + "subs:changes"
"""Stream of subscription changes (create/update/delete), tailed by dispatchers and feeds."""


def delivery(delivery_id: str) -> str:
    return f"{PREFIX}dlv:{delivery_id}"


def subscription_deliveries(subscription_id: str) -> str:
    """Sorted set of a subscription's delivery ids, scored by creation time (ms)."""
    return f"{PREFIX}sub-dlv:{subscription_id}"


FAILED_DELIVERIES = PREFIX + "failed"
"""Sorted set of the ids of deliveries that ended ``failed``, scored by when (ms): the
admin's view of every failure. Candidates only: a listing checks each record's status
(a retried or replayed one is pending again; an expired one is gone)."""


def user_failed_deliveries(user: str) -> str:
    """The same for one user's deliveries."""
    return f"{PREFIX}failed:u:{user}"


RETRY_DUE = PREFIX + "retry:due"
"""Sorted set of delivery ids scored by the Unix time (ms) their next attempt is due."""

DELIVERIES_RECEIVED = PREFIX + "received"
"""String: the latest ``sent_ms`` of any delivery record whose task a worker has received
(Redis time, ms). A due record sent before it was handed out by the broker; one sent
after it may still be queued (notify/redis/lua/delivery_sweep.lua)."""


def target_rate(target: str) -> str:
    return f"{PREFIX}rate:target:{target}"


def delivery_attempts(delivery_id: str) -> str:
    """List of a delivery's attempts (JSON each), newest last, capped."""
    return f"{PREFIX}dlv-att:{delivery_id}"


REPLAYS = PREFIX + "replays"
"""Stream of replay requests, read by dispatchers through REPLAY_GROUP."""

REPLAY_GROUP = "replayers"


def alive(process: str) -> str:
    """String with a short TTL: a dispatcher or worker process's heartbeat. While it
    exists, the process's consumer-group entries and delivery leases stay its own."""
    return f"{PREFIX}alive:{process}"


DELIVERY_METRICS = PREFIX + "metrics:deliveries"
"""Hash of delivery counters and latency buckets, written by workers, read by /metrics."""


def digest_window(subscription_id: str) -> str:
    """Hash: the open digest window of an email subscription (``opened_ms``, ``closes_ms``)."""
    return f"{PREFIX}digest:win:{subscription_id}"


def digest_events(subscription_id: str) -> str:
    """Hash: event id -> envelope, the events of the open digest window."""
    return f"{PREFIX}digest:events:{subscription_id}"


DIGEST_DUE = PREFIX + "digest:due"
"""Sorted set of subscription ids with an open digest window, scored by its closing time (ms)."""

ALERTS = PREFIX + "alerts"
"""Hash: alert key (subscription, alertname, channel) -> the alert's last state (JSON)."""

ALERTS_DUE = PREFIX + "alerts:due"
"""Sorted set of alert keys scored by when the alert is next re-sent to Alertmanager (ms)."""

CELERY_PREFIX = PREFIX + "celery:"
"""Prefix of every key the Celery broker (kombu) writes."""

TOPICS = PREFIX + "topics"
"""Hash: topic id -> topic JSON (the admin's catalogue), read by /v1/topics."""
