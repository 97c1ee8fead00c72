"""Events as Prometheus Alertmanager alerts (pure), per the API v2 ``postableAlert``.

One alert per event: labels ``alertname`` (the event type, without ``.resolved``),
``channel``, ``user`` (the subscription's owner) and ``severity`` (``data.severity``
or ``info``); annotations ``summary``, ``event`` (the event JSON) and ``event_id``
(plus ``description`` when the data has one). A firing alert has no ``endsAt``:
Alertmanager keeps it for its ``resolve_timeout``, so notify re-sends it until it is
resolved. An event of type ``X.resolved`` ends the alert of ``X`` on the same channel,
with the labels that alert fired with.

The last state of each alert (keyed by subscription, alertname and channel) is kept,
so that events handled out of order cannot undo a later one: an event older than the
recorded one is not sent (see ``decide``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from notify.events import parse_id
from notify.mail import header_safe, summary_of

RESOLVED = ".resolved"
DEFAULT_SEVERITY = "info"
MAX_LABEL = 128
API_PATH = "/api/v2/alerts"


@dataclass(frozen=True, slots=True)
class Observed:
    """What one event says about one alert."""

    key: str
    firing: bool
    event_id: str
    alert: dict[str, Any]


def endpoint(url: str) -> str:
    return url.rstrip("/") + API_PATH


def alert_key(subscription: str, alertname: str, channel: str) -> str:
    # none of the three can hold '|': ids are base32, types and channels have a grammar
    return f"{subscription}|{alertname}|{channel}"


def severity_of(data: Any) -> str:
    if isinstance(data, Mapping):
        value = data.get("severity")
        if isinstance(value, str) and value.strip():
            return header_safe(value, MAX_LABEL)
    return DEFAULT_SEVERITY


def observe(event: Mapping[str, Any], *, subscription: str, user: str, now: str) -> Observed:
    """The alert an event makes; ``now`` (RFC 3339, as event times) ends a resolved one."""
    type_, channel = str(event["type"]), str(event["channel"])
    resolved = type_.endswith(RESOLVED) and len(type_) > len(RESOLVED)
    alertname = type_[: -len(RESOLVED)] if resolved else type_
    data = event.get("data")
    annotations = {
        "summary": summary_of(data) or f"{type_} on {channel}",
        "event": orjson.dumps(dict(event)).decode(),
        "event_id": str(event["id"]),
    }
    if isinstance(data, Mapping) and isinstance(data.get("description"), str):
        annotations["description"] = str(data["description"])
    alert: dict[str, Any] = {
        "labels": {
            "alertname": alertname,
            "channel": channel,
            "user": user,
            "severity": severity_of(data),
        },
        "annotations": annotations,
        "startsAt": str(event["time"]),
    }
    if resolved:
        alert["endsAt"] = max(now, alert["startsAt"])
    return Observed(
        alert_key(subscription, alertname, channel), not resolved, str(event["id"]), alert
    )


def decide(
    previous: Mapping[str, Any] | None, seen: Observed, *, subscription: str, url: str
) -> dict[str, Any] | None:
    """The alert state to record and send, or None when a later event was recorded.

    A firing alert keeps the ``startsAt`` of the firing it continues; a resolution
    takes the labels and ``startsAt`` of the alert it ends, so Alertmanager matches it.
    """
    if previous is not None and parse_id(previous["event"]) > parse_id(seen.event_id):
        return None
    alert = dict(seen.alert)
    was_firing = previous is not None and previous["state"] == "firing"
    since = int(previous["since_ms"]) if was_firing and previous else parse_id(seen.event_id)[0]
    if was_firing and previous:
        alert["startsAt"] = previous["alert"]["startsAt"]
        if not seen.firing:
            alert["labels"] = previous["alert"]["labels"]
            alert["endsAt"] = max(alert["endsAt"], alert["startsAt"])
    return {
        "key": seen.key,
        "subscription": subscription,
        "url": url,
        "event": seen.event_id,
        "state": "firing" if seen.firing else "resolved",
        "since_ms": since,
        "alert": alert,
    }
