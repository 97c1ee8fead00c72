"""Delivering a batch of deliveries inside one worker process.

A task carries up to NOTIFY_DELIVERY_BATCH_SIZE delivery ids. They are claimed in one
round trip, sent concurrently on the process's shared HTTP client (within each
target's shared rate budget), and their outcomes written in one more. One Celery
round trip thus carries many HTTP requests, which is what lets two worker processes
pass a thousand deliveries a second.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from notify import retry, ssrf, tracing
from notify.errors import DeliveryError, TargetGone, TransientDeliveryError
from notify.events import now_rfc3339, stored_traceparent
from notify.redis.ledger import Claimed, Finish, Ledger
from notify.redis.subscriptions import SubscriptionStore
from notify.routing import event_ms
from notify.settings import Settings
from notify.sinks.base import Job, Sink
from notify.subscriptions import Subscription

log = logging.getLogger("notify.worker")

UNKNOWN_SINK_DELAY = 60.0
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Holder(Protocol):
    """Renews the leases a batch holds while it runs (the process's heartbeat)."""

    def hold(self, token: str, ids: Sequence[str]) -> None: ...

    def release(self, token: str) -> None: ...


class _NoHolder:
    def hold(self, token: str, ids: Sequence[str]) -> None:
        pass

    def release(self, token: str) -> None:
        pass


class Deliverer:
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        subscriptions: SubscriptionStore,
        sinks: Mapping[str, Sink],
        holder: Holder | None = None,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._subs = subscriptions
        self._sinks = sinks
        self._holder = holder or _NoHolder()

    async def run(self, ids: Sequence[str]) -> Counter[str]:
        """Attempt every deliverable id; returns outcome counts (for logs and tests)."""
        token = secrets.token_hex(8)
        # renewed from before the claim: no beat can miss a lease taken under this token;
        # after a failure the unfinished leases lapse within a heartbeat's TTL
        self._holder.hold(token, ids)
        try:
            return await self._run(ids, token)
        finally:
            self._holder.release(token)

    async def _run(self, ids: Sequence[str], token: str) -> Counter[str]:
        claimed = await self._ledger.claim(ids, token)
        if not claimed:
            return Counter()
        subs = await self._subs.get_many(sorted({c.subscription for c in claimed}))
        finishes: list[Finish] = []
        groups: dict[str | None, list[tuple[Job, Sink]]] = defaultdict(list)
        for c in claimed:
            sub = subs.get(c.subscription)
            if sub is None or not sub.enabled:
                reason = "subscription deleted" if sub is None else "subscription disabled"
                # nothing was sent: an attempt of no duration, like every other entry's shape
                entry = attempt("failed", error=reason, duration_ms=0.0)
                finishes.append(Finish(c.id, "failed", entry))
                continue
            sink = self._sinks.get(c.kind)
            if sink is None:
                # a worker without this sink (an older version, say) leaves it to others
                finishes.append(Finish(c.id, "deferred", None, UNKNOWN_SINK_DELAY))
                continue
            job = Job(c.id, sub, c.body, c.attempts_before + 1)
            groups[sink.target(job)].append((job, sink))
        sends: list[tuple[Job, Sink]] = []
        for target, group in groups.items():
            allowed, deferred = await self._admit(target, group)
            sends += allowed
            finishes += deferred
        # the batch's attempts start together: one timestamp serves them all
        at = now_rfc3339()
        results = await asyncio.gather(*(self._attempt(job, sink, at) for job, sink in sends))
        finishes += [finish for finish, _ in results]
        gone = {job.subscription.id for (job, _), (_, g) in zip(sends, results, strict=True) if g}
        for sub_id in gone:
            await self._subs.disable(sub_id, "the receiver answered 410 Gone")
        owners = {c.id: c.user for c in claimed}
        await self._ledger.finish(token, finishes, metrics_of(claimed, subs, finishes), owners)
        log_failures(claimed, finishes)
        return Counter(f.outcome for f in finishes)

    async def _admit(
        self, target: str | None, group: list[tuple[Job, Sink]]
    ) -> tuple[list[tuple[Job, Sink]], list[Finish]]:
        rate = self._settings.webhook_target_rate
        if target is None or rate <= 0:
            return group, []
        granted, wait = await self._ledger.acquire(target, rate, len(group))
        # the rest come back spread at the target's rate, not all at the same instant
        deferred = [
            Finish(job.delivery_id, "deferred", None, wait + n / rate)
            for n, (job, _) in enumerate(group[granted:])
        ]
        return group[:granted], deferred

    async def _attempt(self, job: Job, sink: Sink, at: str) -> tuple[Finish, bool]:
        """One attempt's record, and whether the receiver asked to be disabled; while
        tracing, in a ``notify.deliver`` span, child of the event's stored traceparent
        (an event without one is not traced), current while the sink sends."""
        parent = stored_traceparent(job.event) if tracing.ENABLED else None
        if parent is None:
            return await self._try(job, sink, at)
        attributes: dict[str, str | int] = {
            "notify.sink": sink.kind,
            "notify.delivery_id": job.delivery_id,
            "notify.subscription_id": job.subscription.id,
            "notify.attempt": job.attempt,
        }
        with tracing.span("notify.deliver", parent, "client", attributes):
            finish, gone = await self._try(job, sink, at)
            entry = finish.attempt or {}
            outcome: dict[str, str | int] = {"notify.outcome": finish.outcome}
            if entry.get("status_code") is not None:
                outcome["http.response.status_code"] = int(entry["status_code"])
            tracing.annotate(outcome, error=entry.get("error"))
        return finish, gone

    async def _try(self, job: Job, sink: Sink, at: str) -> tuple[Finish, bool]:
        started = time.monotonic()
        try:
            receipt = await sink.deliver(job)
        except TransientDeliveryError as exc:
            delay = retry.next_delay(
                self._settings.retry_schedule, job.attempt, retry_after=exc.retry_after
            )
            outcome = "failed" if delay is None else "retry"
            entry = record(at, started, outcome, exc)
            return Finish(job.delivery_id, outcome, entry, delay or 0), False
        except DeliveryError as exc:
            entry = record(at, started, "failed", exc)
            return Finish(job.delivery_id, "failed", entry), isinstance(exc, TargetGone)
        except Exception as exc:
            # a bug in a sink must not lose the delivery: retry it like a network error
            ids = {
                "delivery_id": job.delivery_id,
                "trace_id": tracing.trace_id(stored_traceparent(job.event)),
            }
            log.exception("sink %s failed on %s", sink.kind, job.delivery_id, extra=ids)
            wrapped = TransientDeliveryError(f"internal error: {type(exc).__name__}")
            delay = retry.next_delay(self._settings.retry_schedule, job.attempt)
            outcome = "failed" if delay is None else "retry"
            entry = record(at, started, outcome, wrapped)
            return Finish(job.delivery_id, outcome, entry, delay or 0), False
        entry = attempt(
            "delivered",
            at=at,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            status_code=receipt.status_code,
            response=receipt.detail,
        )
        return Finish(job.delivery_id, "delivered", entry), False


def log_failures(claimed: Sequence[Claimed], finishes: Sequence[Finish]) -> None:
    """One line per failed attempt, with its reason, once its outcome is recorded: a
    WARNING while retries remain, an ERROR when the delivery ends ``failed`` (in JSON
    logs the delivery, subscription, event and trace ids are fields of their own: the
    trace is the event's stored traceparent's, whether this process traces or not)."""
    by_id = {c.id: c for c in claimed}
    for f in finishes:
        if f.outcome not in ("retry", "failed") or f.attempt is None:
            continue
        c = by_id[f.id]
        entry = f.attempt
        reason = entry.get("error") or f"answered {entry.get('status_code')}"
        ids = {
            "delivery_id": f.id,
            "subscription_id": c.subscription,
            "event_id": c.event_id,
            "trace_id": tracing.trace_id(stored_traceparent(c.body)),
        }
        attempt_no = c.attempts_before + 1
        if f.outcome == "retry":
            log.warning(
                "%s delivery %s attempt %d failed: %s; next attempt in %.1f s",
                c.kind, f.id, attempt_no, reason, f.delay_s, extra=ids,
            )  # fmt: skip
        else:
            log.error(
                "%s delivery %s failed for good after %d attempt(s): %s",
                c.kind, f.id, attempt_no, reason, extra=ids,
            )  # fmt: skip


def attempt(outcome: str, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"at": fields.pop("at", None) or now_rfc3339(), "outcome": outcome}
    entry.update({k: v for k, v in fields.items() if v is not None})
    return entry


def record(at: str, started: float, outcome: str, exc: DeliveryError) -> dict[str, Any]:
    return attempt(
        outcome,
        at=at,
        duration_ms=round((time.monotonic() - started) * 1000, 1),
        status_code=exc.status_code,
        error=ssrf.scrub(exc.detail),  # what failed, never which internal address
    )


def metrics_of(
    claimed: Sequence[Claimed], subs: Mapping[str, Subscription], finishes: Sequence[Finish]
) -> dict[str, int]:
    """Counter increments: ``{kind}:{outcome}`` and, for successes, latency buckets
    from publish to delivery (``latency:{kind}:{le}``, cumulative like Prometheus)."""
    kinds = {c.id: c.kind for c in claimed}
    events = {c.id: c.event_id for c in claimed}
    counts: Counter[str] = Counter()
    now_ms = time.time() * 1000
    for f in finishes:
        kind = kinds.get(f.id, "unknown")
        counts[f"{kind}:{f.outcome}"] += 1
        if f.outcome == "delivered":
            seconds = max(0.0, (now_ms - event_ms(events[f.id])) / 1000)
            counts[f"latency_sum_ms:{kind}"] += int(seconds * 1000)
            for le in LATENCY_BUCKETS:
                if seconds <= le:
                    counts[f"latency:{kind}:{le}"] += 1
            counts[f"latency:{kind}:+Inf"] += 1
    return dict(counts)
