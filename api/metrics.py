"""Prometheus metrics of the gateway. No label carries a channel or user name."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_PUBLISHED = Counter(
    "notify_events_published", "Events accepted by this gateway", registry=REGISTRY
)
STREAMS_OPEN = Gauge(
    "notify_streams_open", "Live stream connections", ["transport"], registry=REGISTRY
)
EVENTS_SENT = Counter("notify_events_sent", "Events written to live connections", registry=REGISTRY)
SLOW_CONSUMERS = Counter(
    "notify_slow_consumer_disconnects",
    "Connections closed because they fell behind their queue limit",
    registry=REGISTRY,
)
READER_UP = Gauge("notify_reader_up", "1 while the event log reader runs", registry=REGISTRY)
