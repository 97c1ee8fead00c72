"""Monitoring delivery end to end: events become alerts in a real Prometheus Alertmanager."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

from tests.integration.conftest import StackFactory
from tests.integration.delivery_stack import Stack
from tests.support.alertmanager import Alertmanager


def monitoring(stack: Stack, am: Alertmanager) -> str:
    sub = stack.subscribe("alerts.>", {"kind": "monitoring", "url": am.url})
    return str(sub["id"])


def active(am: Alertmanager, alertname: str) -> list[dict[str, Any]]:
    return [a for a in am.alerts() if a["labels"].get("alertname") == alertname]


def test_firing_then_resolved(stack_factory: StackFactory, alertmanager: Alertmanager) -> None:
    # Alertmanager drops an alert not re-sent within resolve_timeout (3 s here): the
    # re-sender (every 0.5 s) must keep it firing past that
    stack = stack_factory(NOTIFY_ALERT_RESEND_SECONDS="0.5")
    sub = monitoring(stack, alertmanager)
    event_id = stack.publish(
        "alerts.prod.db", "db.down", {"severity": "critical", "summary": "primary is down"}
    )
    [alert] = stack.wait_for("the alert", lambda: active(alertmanager, "db.down"))
    assert alert["labels"] == {
        "alertname": "db.down",
        "channel": "alerts.prod.db",
        "user": "alice",
        "severity": "critical",
    }
    assert alert["annotations"]["summary"] == "primary is down"
    assert json.loads(alert["annotations"]["event"])["id"] == event_id
    assert alert["status"]["state"] == "active"
    [record] = stack.wait_status(sub, "delivered")
    assert record["attempts"][0]["status_code"] == 200

    time.sleep(4.5)
    assert [a["labels"]["alertname"] for a in active(alertmanager, "db.down")] == ["db.down"]

    # no severity on the resolution: it still ends the alert that fired as critical
    stack.publish("alerts.prod.db", "db.down.resolved", {"summary": "back"})
    stack.wait_for("the alert to resolve", lambda: not active(alertmanager, "db.down"))
    stack.wait_status(sub, "delivered", count=2)
    time.sleep(1.0)
    assert active(alertmanager, "db.down") == []


def at(stamp: str) -> datetime:
    """An Alertmanager time (RFC 3339, up to nanoseconds) to the microsecond."""
    stamp = re.sub(r"(\.\d{6})\d+", r"\1", stamp)
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_an_alert_stops_being_resent_after_its_max_age(
    stack_factory: StackFactory, alertmanager: Alertmanager
) -> None:
    """Re-sent every 0.5 s for its 3 s of age, past Alertmanager's 3 s resolve_timeout,
    then left to expire. Alertmanager's ``updatedAt`` is the time of the last post it
    had: followed until the alert expires, it says when the re-sending stopped."""
    stack = stack_factory(NOTIFY_ALERT_RESEND_SECONDS="0.5", NOTIFY_ALERT_MAX_AGE_SECONDS="3")
    monitoring(stack, alertmanager)
    # its age counts from the event: the worker must be up (it starts slowly) to post
    # the alert well within it
    stack.publish("alerts.prod.warm", "warm.up")
    stack.wait_for("a first alert", lambda: active(alertmanager, "warm.up"), timeout=40)
    stack.publish("alerts.prod.web", "web.slow")
    [alert] = stack.wait_for("the alert", lambda: active(alertmanager, "web.slow"))
    assert alert["labels"]["severity"] == "info"
    fired, last_post = at(alert["startsAt"]), at(alert["updatedAt"])
    deadline = time.monotonic() + 20
    while firing := active(alertmanager, "web.slow"):
        last_post = max(last_post, at(firing[0]["updatedAt"]))
        assert time.monotonic() < deadline, "still firing: re-sent past its maximum age"
        time.sleep(0.1)
    resent_for = (last_post - fired).total_seconds()
    # the last re-send within a resend interval of the age, then none
    assert 3 - 0.5 - 0.5 <= resent_for <= 3 + 0.5, resent_for
