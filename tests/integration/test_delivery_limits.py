"""Webhook delivery limits and concurrency against real processes: the per-target rate
limit, ``Retry-After`` on a 503, and two dispatchers sharing the work."""

from __future__ import annotations

import json

from tests.integration.conftest import StackFactory
from tests.integration.delivery_stack import Stack
from tests.support.webhook_receiver import Answer, Receiver

WORKER_START = 40.0  # a Celery worker starts slowly on a busy two-core machine


def webhook(stack: Stack, receiver: Receiver, path: str) -> str:
    sub = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url(path)})
    receiver.trust(path, sub["secret"])
    return str(sub["id"])


def test_the_per_target_rate_limit_spreads_deliveries(
    stack_factory: StackFactory, receiver: Receiver
) -> None:
    """5/s with bursts of twice the rate: 30 events take at least (30 - 10) / 5 = 4 s,
    and none is lost (the rest are deferred, not failed)."""
    stack = stack_factory(NOTIFY_WEBHOOK_TARGET_RATE="5")
    webhook(stack, receiver, "/slow")
    stack.publish("orders.eu", data={"warm": True})
    receiver.wait("/slow", 1, timeout=WORKER_START)
    # the worker is up; the budget is back to its burst of 10 by the time the 30 come
    ids = stack.publish_many([{"channel": "orders.eu", "type": "t", "data": n} for n in range(30)])
    got = receiver.wait("/slow", 31, timeout=30)[1:]
    assert sorted(json.loads(g.body)["id"] for g in got) == sorted(ids)
    span = got[-1].at - min(g.at for g in got)
    assert span >= 3.5, span  # ~4 s; without the limit they all land within a second


def test_a_503_with_retry_after_is_retried_after_it(stack: Stack, receiver: Receiver) -> None:
    sub = webhook(stack, receiver, "/unavailable")
    receiver.answer("/unavailable", Answer(503, headers=(("retry-after", "2"),)))
    stack.publish("orders.eu")
    first, second = receiver.wait("/unavailable", 2, timeout=WORKER_START)
    assert second.at - first.at >= 1.9  # not the 0.2 s of the schedule
    [record] = stack.wait_status(sub, "delivered")
    assert record["attempts"][0]["status_code"] == 503


def test_two_dispatchers_deliver_each_event_once(stack: Stack, receiver: Receiver) -> None:
    stack.dispatcher(name="dispatcher2")
    sub = webhook(stack, receiver, "/twice")
    ids = stack.publish_many([{"channel": "orders.eu", "type": "t", "data": n} for n in range(60)])
    stack.wait_status(sub, "delivered", count=60, timeout=WORKER_START)
    got = [json.loads(g.body)["id"] for g in receiver.at("/twice")]
    assert sorted(got) == sorted(ids)  # every event once: none lost, none twice
