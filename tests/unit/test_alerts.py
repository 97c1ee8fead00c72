"""Events as Alertmanager alerts, and the order rules between them."""

from __future__ import annotations

from typing import Any

import pytest

from notify import alerts

NOW = "2026-11-27T06:00:00.000Z"


def event(type_: str, data: Any = None, n: int = 0, channel: str = "alerts.db") -> dict[str, Any]:
    return {
        "id": f"1732683600{n:03d}-0",
        "channel": channel,
        "type": type_,
        "data": data,
        "time": f"2026-11-27T05:00:00.{n:03d}Z",
    }


def test_a_firing_alert() -> None:
    seen = alerts.observe(
        event("db.down", {"severity": "critical", "summary": "primary down", "description": "d"}),
        subscription="sub_x",
        user="alice",
        now=NOW,
    )
    assert seen.key == "sub_x|db.down|alerts.db"
    assert seen.firing
    assert seen.alert == {
        "labels": {
            "alertname": "db.down",
            "channel": "alerts.db",
            "user": "alice",
            "severity": "critical",
        },
        "annotations": {
            "summary": "primary down",
            "event": '{"id":"1732683600000-0","channel":"alerts.db","type":"db.down","data":'
            '{"severity":"critical","summary":"primary down","description":"d"},'
            '"time":"2026-11-27T05:00:00.000Z"}',
            "event_id": "1732683600000-0",
            "description": "d",
        },
        "startsAt": "2026-11-27T05:00:00.000Z",
    }


@pytest.mark.parametrize(
    ("type_", "data", "alertname", "severity", "firing"),
    [
        ("db.down", None, "db.down", "info", True),
        ("db.down", {"severity": 3}, "db.down", "info", True),
        ("db.down", {"severity": "warn\r\ning"}, "db.down", "warn ing", True),
        ("db.down.resolved", {}, "db.down", "info", False),
        ("resolved", {}, "resolved", "info", True),
        (".resolved", {}, ".resolved", "info", True),
        ("x.resolved.resolved", {}, "x.resolved", "info", False),
    ],
)
def test_labels(type_: str, data: Any, alertname: str, severity: str, firing: bool) -> None:
    seen = alerts.observe(event(type_, data), subscription="s", user="u", now=NOW)
    assert seen.alert["labels"]["alertname"] == alertname
    assert seen.alert["labels"]["severity"] == severity
    assert seen.firing is firing
    assert ("endsAt" in seen.alert) is (not firing)


def test_resolution_ends_now_never_before_it_started() -> None:
    seen = alerts.observe(event("a.resolved"), subscription="s", user="u", now=NOW)
    assert seen.alert["endsAt"] == NOW
    early = alerts.observe(event("a.resolved"), subscription="s", user="u", now="2000-01-01")
    assert early.alert["endsAt"] == early.alert["startsAt"]


def observe(type_: str, data: Any = None, n: int = 0) -> alerts.Observed:
    return alerts.observe(event(type_, data, n), subscription="s", user="u", now=NOW)


def test_decide_order_and_continuity() -> None:
    fire = alerts.decide(
        None, observe("db.down", {"severity": "critical"}, 1), subscription="s", url="u"
    )
    assert fire is not None
    assert fire["state"] == "firing" and fire["since_ms"] == 1732683600001
    # firing again keeps when it started
    again = alerts.decide(
        fire, observe("db.down", {"severity": "critical"}, 2), subscription="s", url="u"
    )
    assert again is not None
    assert again["alert"]["startsAt"] == fire["alert"]["startsAt"]
    assert again["since_ms"] == fire["since_ms"]
    # the resolution takes the labels the alert fired with
    done = alerts.decide(again, observe("db.down.resolved", None, 3), subscription="s", url="u")
    assert done is not None
    assert done["state"] == "resolved"
    assert done["alert"]["labels"]["severity"] == "critical"
    assert done["alert"]["startsAt"] == fire["alert"]["startsAt"]
    assert done["alert"]["endsAt"] == NOW
    # an older event arriving late (a retry) changes nothing
    assert alerts.decide(done, observe("db.down", None, 2), subscription="s", url="u") is None
    # the same event again (a retry of it) is sent again
    assert alerts.decide(done, observe("db.down.resolved", None, 3), subscription="s", url="u")


def test_endpoint() -> None:
    assert alerts.endpoint("http://am:9093") == "http://am:9093/api/v2/alerts"
    assert alerts.endpoint("http://am/prefix/") == "http://am/prefix/api/v2/alerts"
