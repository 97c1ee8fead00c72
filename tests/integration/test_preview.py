"""POST /v1/subscriptions/preview over real HTTP: each sink's body for an event."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email.policy import default
from typing import Any

import httpx
import orjson
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from tests.support.factories import TokenMaker
from tests.support.procs import Gateway

HOOK = {"kind": "webhook", "url": "https://hooks.example.com/in"}
EVENT = {"channel": "orders.eu", "type": "order.created", "data": {"order": 17}}


def client(gw: Gateway, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=gw.base_url, headers={"authorization": f"Bearer {token}"}, trust_env=False
    )


@pytest.fixture
def bob(gateway: Gateway, make_token: TokenMaker) -> Iterator[httpx.Client]:
    with client(gateway, make_token("bob", subscribe=["orders.>"], publish=["orders.>"])) as c:
        yield c


def preview(c: httpx.Client, sink: dict[str, Any], **body: Any) -> httpx.Response:
    return c.post("/v1/subscriptions/preview", json={"sink": sink, **body})


def test_each_sink_previews_its_body(bob: httpx.Client) -> None:
    r = preview(
        bob, {**HOOK, "format": "template", "template": "#{{ event.data.order }}"}, event=EVENT
    )
    assert r.status_code == 200, r.text
    assert (r.content, r.headers["content-type"]) == (b"#17", "text/plain; charset=utf-8")

    r = preview(bob, {**HOOK, "format": "slack"}, event=EVENT)
    assert r.headers["content-type"] == "application/json"
    assert r.json()["text"] == "order.created on orders.eu"

    r = preview(bob, {**HOOK, "format": "cloudevents"}, event=EVENT)
    ce = from_http_event(HTTPMessage(dict(r.headers), r.content))
    assert (ce.get_type(), ce.get_data()) == ("order.created", {"order": 17})

    r = preview(bob, HOOK, event=EVENT)
    envelope = r.json()
    assert {k: envelope[k] for k in EVENT} == EVENT and envelope["id"].endswith("-0")

    r = preview(
        bob,
        {
            "kind": "email",
            "to": "b@example.com",
            "template": {"subject": "#{{ event.data.order }}"},
        },
        event=EVENT,
    )
    assert r.headers["content-type"] == "message/rfc822"
    msg = email.message_from_bytes(r.content, policy=default)
    assert msg["Subject"] == "#17" and msg["To"] == "b@example.com"

    r = preview(bob, {"kind": "monitoring", "url": "http://am.example:9093"}, event=EVENT)
    [alert] = r.json()
    assert alert["labels"]["alertname"] == "order.created"
    assert preview(bob, {"kind": "web"}, event=EVENT).json()["type"] == "order.created"


def test_a_retained_event_previews_with_read_rights_only(
    bob: httpx.Client, gateway: Gateway, make_token: TokenMaker
) -> None:
    published = bob.post("/v1/events", json=EVENT).json()
    r = preview(bob, {**HOOK, "format": "discord"}, event_id=published["id"])
    assert r.status_code == 200, r.text
    assert r.json()["embeds"][0]["footer"]["text"] == f"event {published['id']}"
    with client(gateway, make_token("eve", subscribe=["other.>"])) as eve:
        r = preview(eve, HOOK, event_id=published["id"])
        assert r.status_code == 403
        assert r.json()["field"] == "event_id"
    assert preview(bob, HOOK, event_id="1-0").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"sink": {**HOOK, "format": "nope"}, "event": EVENT}, 422, "sink.format"),
        (
            {"sink": {**HOOK, "format": "template", "template": "{{"}, "event": EVENT},
            422,
            "sink.template",
        ),
        (
            {
                "sink": {**HOOK, "format": "template", "template": "{{ event.data.x.y }}"},
                "event": EVENT,
            },
            422,
            "sink.template",
        ),
        ({"sink": HOOK}, 422, "event"),
        ({"sink": HOOK, "event": EVENT, "event_id": "1-0"}, 422, "event"),
        ({"sink": HOOK, "event": {**EVENT, "channel": "a..b"}}, 422, "event.channel"),
        ({"sink": HOOK, "event": {"channel": "a", "type": "t"}}, 422, "event.data"),
        ({"sink": HOOK, "event": EVENT, "extra": 1}, 422, "extra"),
        ({"sink": HOOK, "event_id": "nope"}, 400, "event_id"),
        ([], 422, "sink"),
    ],
)
def test_bad_previews(bob: httpx.Client, body: Any, status: int, field: str) -> None:
    r = bob.post(
        "/v1/subscriptions/preview",
        content=orjson.dumps(body),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field
