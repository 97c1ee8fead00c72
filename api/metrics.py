"""Prometheus metrics of the gateway. No label carries a channel or user name.

With ``notify serve --workers N`` each process counts into files of prometheus_client's
multiprocess mode (a directory per run, made by the supervisor, which sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers import this), and a scrape answered by
any of them adds up all of them: each event is counted once, whichever process answers.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterator, Mapping

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from notify.redis.errors import FAILURES as redis_failures
from notify.redis.pending import Backlog

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))
REGISTRY = CollectorRegistry(auto_describe=True)
# the standard process_* and python_* series (the default registry's collectors)
STANDARD = (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR)
for _standard in STANDARD:
    REGISTRY.register(_standard)

EVENTS_PUBLISHED = Counter(
    "notify_events_published", "Events accepted by this gateway", registry=REGISTRY
)
STREAMS_OPEN = Gauge(
    "notify_streams_open",
    "Live stream connections",
    ["transport"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
_sent = [0]
# multiprocess mode: the plain integer is moved into a counter file now and then
# (each housekeeping tick and each scrape), keeping the hot path a plain addition
_EVENTS_SENT = (
    Counter("notify_events_sent", "Events written to live connections", registry=None)
    if MULTIPROCESS
    else None
)


HTTP_REQUESTS_HELP = "HTTP requests answered, by route template, method and status"
HTTP_SECONDS_HELP = (
    "Seconds from a request's arrival to the start of its answer, by route template and"
    " method (a stream: until its headers); POST /v1/events is the publish latency"
)
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
# Plain counts on the request path (a dict entry and a bisect: about 1 % of a publish,
# where prometheus_client's locked Counter and Histogram cost 5 %), read by a collector
# at scrape time; with --workers, the metric files of multiprocess mode instead.
_answers: dict[tuple[str, str, int], int] = {}
_latency: dict[tuple[str, str], list[float]] = {}
"""Per (route, method): a count per bucket (non-cumulative, the last one +Inf), then
the sum of seconds."""
_HTTP_REQUESTS = (
    Counter("notify_http_requests", HTTP_REQUESTS_HELP, ["route", "method", "status"])
    if MULTIPROCESS
    else None
)
_HTTP_SECONDS = (
    Histogram(
        "notify_http_request_duration_seconds",
        HTTP_SECONDS_HELP,
        ["route", "method"],
        buckets=HTTP_BUCKETS,
    )
    if MULTIPROCESS
    else None
)


def answered(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answer. ``route`` is a template (``/v1/deliveries/{delivery_id}``) or
    ``unmatched``, never a raw path: no label takes one value per id, channel or user."""
    if method not in METHODS:
        method = "OTHER"
    if _HTTP_REQUESTS is not None and _HTTP_SECONDS is not None:
        _HTTP_REQUESTS.labels(route, method, str(status)).inc()
        _HTTP_SECONDS.labels(route, method).observe(seconds)
        return
    key = (route, method, status)
    _answers[key] = _answers.get(key, 0) + 1
    counts = _latency.get((route, method))
    if counts is None:
        counts = _latency[(route, method)] = [0.0] * (len(HTTP_BUCKETS) + 2)
    counts[bisect_left(HTTP_BUCKETS, seconds)] += 1
    counts[-1] += seconds


class _HttpCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "notify_http_requests", HTTP_REQUESTS_HELP, labels=["route", "method", "status"]
        )
        for (route, method, status), n in list(_answers.items()):
            requests.add_metric([route, method, str(status)], n)
        yield requests
        seconds = HistogramMetricFamily(
            "notify_http_request_duration_seconds", HTTP_SECONDS_HELP, labels=["route", "method"]
        )
        for (route, method), counts in list(_latency.items()):
            cumulative, buckets = 0.0, []
            for le, count in zip((*map(str, HTTP_BUCKETS), "+Inf"), counts[:-1], strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            seconds.add_metric([route, method], buckets, sum_value=counts[-1])
        yield seconds


if not MULTIPROCESS:
    REGISTRY.register(_HttpCollector())


REDIS_ERRORS = Counter(
    "notify_redis_errors",
    "Redis errors met by this gateway, by reason (unreachable, timed out, loading its"
    " data, read-only replica, out of memory, ..., or refused)",
    ["reason"],
    registry=REGISTRY,
)


def flush_sent() -> None:
    """Move what the hot paths count in plain integers into the metrics (every
    housekeeping tick and every scrape)."""
    if _EVENTS_SENT is not None and _sent[0]:
        n, _sent[0] = _sent[0], 0
        _EVENTS_SENT.inc(n)
    if redis_failures:
        taken = dict(redis_failures)
        redis_failures.clear()
        for why, n in taken.items():
            REDIS_ERRORS.labels(why).inc(n)


def sent(n: int) -> None:
    """Count events written to live connections (a plain integer on the hot path,
    read by the collector at scrape time)."""
    _sent[0] += n


class _SentCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "notify_events_sent", "Events written to live connections", value=_sent[0]
        )


if not MULTIPROCESS:
    REGISTRY.register(_SentCollector())
SLOW_CONSUMERS = Counter(
    "notify_slow_consumer_disconnects",
    "Connections closed because they fell behind their queue limit",
    registry=REGISTRY,
)
READER_UP = Gauge(
    "notify_reader_up",
    "1 while the event log reader runs (every process's, with --workers)",
    registry=REGISTRY,
    multiprocess_mode="livemin",
)


def exposition() -> bytes:
    """This gateway's metrics as Prometheus text: this process's, or with ``--workers``
    the sum over the live processes (gauges) and all processes of the run (counters)."""
    flush_sent()
    if not MULTIPROCESS:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    for standard in STANDARD:  # process_* and python_* of the process that answers
        registry.register(standard)
    return generate_latest(registry)


def delivery_text(fields: Mapping[bytes | str, bytes | str]) -> bytes:
    """Prometheus text for the delivery counters the workers keep in Redis (a hash of
    ``{sink}:{outcome}``, ``latency:{sink}:{le}`` and ``latency_sum_ms:{sink}``)."""
    outcomes: list[str] = []
    buckets: dict[str, list[tuple[float, str, int]]] = {}
    sums: dict[str, float] = {}
    for raw_name, raw_value in sorted(fields.items()):
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        value = int(raw_value)
        parts = name.split(":")
        if parts[0] == "latency" and len(parts) == 3:
            le = float("inf") if parts[2] == "+Inf" else float(parts[2])
            buckets.setdefault(parts[1], []).append((le, parts[2], value))
        elif parts[0] == "latency_sum_ms" and len(parts) == 2:
            sums[parts[1]] = value / 1000
        elif len(parts) == 2:
            outcomes.append(
                f'notify_deliveries_total{{sink="{parts[0]}",outcome="{parts[1]}"}} {value}'
            )
    lines = [
        "# HELP notify_deliveries_total Delivery attempts by sink and outcome, all workers",
        "# TYPE notify_deliveries_total counter",
        *outcomes,
        "# HELP notify_delivery_latency_seconds Time from publish to delivery, all workers",
        "# TYPE notify_delivery_latency_seconds histogram",
    ]
    for sink, rows in sorted(buckets.items()):
        count = 0
        for _, label, value in sorted(rows):
            lines.append(
                f'notify_delivery_latency_seconds_bucket{{sink="{sink}",le="{label}"}} {value}'
            )
            count = max(count, value)
        lines.append(f'notify_delivery_latency_seconds_sum{{sink="{sink}"}} {sums.get(sink, 0.0)}')
        lines.append(f'notify_delivery_latency_seconds_count{{sink="{sink}"}} {count}')
    return ("\n".join(lines) + "\n").encode()


def backlog_text(backlog: Backlog) -> bytes:
    """Prometheus text for what waits in Redis (the same on every gateway: use max)."""
    rows = [
        (
            "notify_dispatch_pending_entries",
            "Log entries read by a dispatcher, not yet acknowledged",
            backlog.dispatch_pending,
        ),
        (
            "notify_dispatch_oldest_pending_seconds",
            "Age of the oldest unacknowledged log entry",
            backlog.dispatch_oldest_pending_seconds,
        ),
        (
            "notify_retry_due_deliveries",
            "Deliveries waiting in Redis for a later attempt",
            backlog.retry_due,
        ),
        (
            "notify_retry_overdue_seconds",
            "How late the most overdue waiting delivery is",
            backlog.retry_overdue_seconds,
        ),
    ]
    if backlog.dispatch_lag is not None:
        rows.insert(
            0,
            (
                "notify_dispatch_lag_entries",
                "Log entries the dispatchers have not read yet",
                backlog.dispatch_lag,
            ),
        )
    lines: list[str] = []
    for name, doc, value in rows:
        lines += [f"# HELP {name} {doc}", f"# TYPE {name} gauge", f"{name} {float(value)}"]
    return ("\n".join(lines) + "\n").encode()
