"""RabbitMQ as Celery's broker (``NOTIFY_BROKER_URL=amqp://…``; Redis stays the store),
against the machine's RabbitMQ on 127.0.0.1:5672 (``make rabbitmq`` starts it), each
test in a vhost of its own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kombu import Connection

from tests.integration.delivery_stack import make_stack
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.redis import RedisServer
from tests.support.webhook_receiver import Answer, Receiver

QUEUE = "notify.deliveries"


def _queue(url: str) -> tuple[int, int]:
    """(ready messages, consumers) of the delivery queue."""
    with Connection(url, connect_timeout=5) as conn:
        channel: Any = conn.default_channel
        declared = channel.queue_declare(QUEUE, passive=True)
        return int(declared.message_count), int(declared.consumer_count)


def test_deliveries_go_through_rabbitmq_and_a_killed_workers_messages_come_back(
    broker_url: str,
    redis_server: RedisServer,
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    stack = make_stack(
        gateway_factory,
        make_token,
        tmp_path / "stack",
        redis_server.url,
        NOTIFY_BROKER_URL=broker_url,
        # a request that hangs stays in flight for the whole test
        NOTIFY_WEBHOOK_TIMEOUT_SECONDS=60,
        NOTIFY_DELIVERY_LEASE_SECONDS=65,
        NOTIFY_WORKER_STALL_SECONDS=120,
    )
    try:
        sub = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url("/hook")})
        first = stack.publish("orders.a")
        stack.wait_events(sub["id"], "delivered", [first], timeout=30)
        # nothing of it went through Redis' broker keys: the queue lives in RabbitMQ
        assert _queue(broker_url) == (0, 1)

        receiver.answer("/hook", default=Answer(delay=120))
        stack.publish("orders.b")
        receiver.wait("/hook", 2, timeout=30)  # the worker holds it, unacknowledged
        assert _queue(broker_url) == (0, 1)
        worker = next(p for p in stack.procs if p.name == "worker0")
        killed = time.monotonic()
        worker.kill()  # SIGKILL; its Celery child dies with it (PDEATHSIG)
        deadline = killed + 10
        while (state := _queue(broker_url)) != (1, 0):
            assert time.monotonic() < deadline, f"(ready, consumers) still {state}"
            time.sleep(0.1)
        back_after = time.monotonic() - killed
        assert back_after < 5, back_after
    finally:
        stack.close()
        print(stack.logs())
