"""Webhook formats end to end: real gateway, dispatcher, Celery worker and receivers
that check each body against its service's documented schema (and its signature)."""

from __future__ import annotations

import functools

import orjson
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from tests.integration.delivery_stack import Stack
from tests.support import chat_schemas
from tests.support.webhook_receiver import Receiver

WAIT = 40.0  # the first delivery waits for a worker to start, slow on a loaded machine
LONG = {"summary": "Disk <full> on db-1 & @everyone", "log": "x" * 20_000, "n": 1}


def hook(stack: Stack, receiver: Receiver, path: str, **sink: object) -> str:
    sub = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url(path), **sink})
    receiver.trust(path, sub["secret"])
    return str(sub["id"])


@pytest.mark.parametrize("service", ["slack", "discord", "teams"])
def test_chat_formats_are_accepted_by_their_schema(
    stack: Stack, receiver: Receiver, service: str
) -> None:
    path = f"/{service}"
    receiver.checks(path, functools.partial(chat_schemas.check, service))
    plain = hook(stack, receiver, path, format=service)
    templated = hook(stack, receiver, path + "/t", format=service, template="New {{ event.type }}")
    receiver.checks(path + "/t", functools.partial(chat_schemas.check, service))
    stack.publish("orders.eu", "order.created", LONG)
    stack.publish("orders.eu", "order.paid", None)
    for sub in (plain, templated):
        records = stack.wait_status(sub, "delivered", count=2, timeout=WAIT)
        assert all(r["attempts"][0]["status_code"] == 200 for r in records)
    got = receiver.at(path)
    assert all(r.verified and r.headers["content-type"] == "application/json" for r in got)
    assert "Disk" in got[0].body.decode() or "Disk" in got[1].body.decode()
    assert b"order.paid" in receiver.at(path + "/t")[-1].body + receiver.at(path + "/t")[0].body


def test_cloudevents_format_parses_with_the_sdk(stack: Stack, receiver: Receiver) -> None:
    sub = hook(stack, receiver, "/ce", format="cloudevents")
    event_id = stack.publish("orders.eu", "order.created", {"order": 17})
    [got] = receiver.wait("/ce", 1, timeout=WAIT)
    assert got.verified is True
    assert got.headers["content-type"] == "application/cloudevents+json; charset=utf-8"
    event = from_http_event(HTTPMessage(got.headers, got.body))
    assert event.get_id() == event_id
    assert event.get_type() == "order.created"
    assert event.get_data() == {"order": 17}
    assert event.get_extension("channel") == "orders.eu"
    [record] = stack.wait_status(sub, "delivered", timeout=WAIT)
    assert record["id"] == got.webhook_id


def test_template_format_and_a_template_failing_at_delivery(
    stack: Stack, receiver: Receiver
) -> None:
    good = hook(
        stack,
        receiver,
        "/tpl",
        format="template",
        template='{"order": {{ event.data.order|tojson }}, "kind": "{{ event.type }}"}',
    )
    broken = hook(stack, receiver, "/broken", format="template", template="{{ event.data.x.y }}")
    forever = hook(
        stack,
        receiver,
        "/forever",
        format="template",
        template="{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    )
    stack.publish("orders.eu", "order.created", {"order": 17})
    [got] = receiver.wait("/tpl", 1, timeout=WAIT)
    assert got.body == b'{"order": 17, "kind": "order.created"}'
    assert got.verified and got.headers["content-type"] == "application/json"
    [failed] = stack.wait_status(broken, "failed", timeout=WAIT)
    assert failed["attempts"][-1]["error"] == "template: line 1: 'dict object' has no attribute 'x'"
    assert len(failed["attempts"]) == 1  # the same template fails the same way: no retry
    [cut] = stack.wait_status(forever, "failed", timeout=WAIT)
    assert "ran longer than 100 ms" in cut["attempts"][-1]["error"]
    assert receiver.at("/broken") == [] and receiver.at("/forever") == []
    # the worker is unharmed: the next event is delivered as usual
    stack.publish("orders.eu", "order.created", {"order": 18})
    assert receiver.wait("/tpl", 2, timeout=WAIT)[1].body.startswith(b'{"order": 18')
    stack.wait_status(good, "delivered", count=2, timeout=WAIT)


def test_a_bad_template_is_refused_when_saved(stack: Stack, receiver: Receiver) -> None:
    r = stack.client.post(
        "/v1/subscriptions",
        json={
            "channel": "orders.>",
            "sink": {
                "kind": "webhook",
                "url": receiver.url("/x"),
                "format": "template",
                "template": "{\n{{ event.type( }}\n}",
            },
        },
    )
    assert r.status_code == 422
    problem = orjson.loads(r.content)
    assert problem["field"] == "sink.template"
    assert "line 2" in problem["detail"]
