"""NOTIFY_ALLOWED_PRIVATE_TARGETS with a real gateway and worker: a listed private
target is validated and delivered to; any other private target stays refused."""

from __future__ import annotations

from tests.integration.conftest import StackFactory
from tests.support.webhook_receiver import Receiver


def test_a_listed_name_is_delivered_to_and_others_refused(
    stack_factory: StackFactory, receiver: Receiver
) -> None:
    stack = stack_factory(
        NOTIFY_ALLOW_PRIVATE_TARGETS="0", NOTIFY_ALLOWED_PRIVATE_TARGETS="localhost"
    )
    by_address = stack.client.post(
        "/v1/subscriptions",
        json={"channel": "orders.>", "sink": {"kind": "webhook", "url": receiver.url("/x")}},
    )
    assert by_address.status_code == 422, by_address.text
    assert by_address.json()["field"] == "sink.url"

    url = receiver.url("/hook").replace("127.0.0.1", "localhost")
    sub = stack.subscribe("orders.>", {"kind": "webhook", "url": url})
    event = stack.publish("orders.a")
    stack.wait_events(sub["id"], "delivered", [event], timeout=60)
    assert receiver.at("/hook")
