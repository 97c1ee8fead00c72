"""Crashes mid-burst: kill -9 the dispatcher and a worker, restart, lose nothing."""

from __future__ import annotations

import os

import redis

from notify import keys
from tests.integration.conftest import StackFactory
from tests.support.redis import RedisServer
from tests.support.webhook_receiver import Receiver

BURST = int(os.environ.get("NOTIFY_TEST_BURST", "1000"))
PATHS = ("/k1", "/k2", "/k3")


def test_kill_dispatcher_and_worker_mid_burst(
    stack_factory: StackFactory, receiver: Receiver, redis_server: RedisServer
) -> None:
    stack = stack_factory(workers=2)
    subs = {}
    for path in PATHS:
        created = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url(path)})
        receiver.trust(path, created["secret"])
        subs[created["id"]] = path
    dispatcher, worker = stack.procs[0], stack.procs[1]
    events = [
        {"channel": f"orders.{n % 7}", "type": "order.created", "data": n} for n in range(BURST)
    ]
    ids = stack.publish_many(events)
    total = BURST * len(PATHS)

    stack.wait_for("the burst to be under way", lambda: len(receiver.received) >= total // 10)
    dispatcher.kill()
    worker.kill()
    dispatcher.start()
    worker.start()

    client = redis.Redis.from_url(redis_server.url)
    try:

        def all_delivered() -> bool:
            return sum(
                client.zcard(keys.subscription_deliveries(s)) for s in subs
            ) == total and not client.zcard(keys.RETRY_DUE)

        stack.wait_for("every delivery to finish", all_delivered, timeout=45, every=0.25)
        records = [k for k in client.scan_iter(keys.delivery("*"), count=1000)]
        assert len(records) == total  # exactly one record per (subscription, event)
        for sub_id, path in subs.items():
            listed = stack.deliveries(sub_id)
            assert len(listed) == BURST
            assert {d["event_id"] for d in listed} == set(ids)
            assert {d["status"] for d in listed} == {"delivered"}
            seen = {r.webhook_id for r in receiver.at(path)}
            assert seen >= {d["id"] for d in listed}  # at least once
        assert all(r.verified for r in receiver.received)
    finally:
        client.close()
