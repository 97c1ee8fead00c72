"""A Celery worker's main process reserves what it receives (notify.redis.heartbeat):
at once, not at its next beat, since a process killed in between would leave those
deliveries to wait out the lease set when they were created."""

from __future__ import annotations

import asyncio
import time

import redis

from notify import keys
from notify.redis.client import async_client
from notify.redis.heartbeat import LeaseKeeper
from notify.redis.ledger import Ledger
from notify.routing import Delivery
from tests.support.redis import RedisServer

LEASE_S = 600.0
TTL_S = 30.0  # a beat every 10 s: only the wake-up can apply a reservation sooner


async def create(url: str, delivery: Delivery) -> None:
    client = async_client(url)
    try:
        ledger = Ledger(client, lease_s=LEASE_S, retention_s=3600)
        assert await ledger.create([(delivery, "orders.1", "t", b"{}")]) == [delivery.id]
    finally:
        await client.aclose()


def test_a_reservation_is_applied_at_once(
    redis_server: RedisServer,
) -> None:
    ids = [f"d{n}" for n in range(3)]
    for i in ids:
        asyncio.run(create(redis_server.url, Delivery(i, "sub", "alice", "webhook", "e" + i)))
    client = redis.Redis.from_url(redis_server.url)
    keeper = LeaseKeeper(redis_server.url, "worker-test", TTL_S)
    keeper.start()
    try:

        def due_within_ttl(i: str) -> bool:
            seconds, micros = client.time()
            score = client.zscore(keys.RETRY_DUE, i)
            return score is not None and score <= seconds * 1000 + micros // 1000 + TTL_S * 1000

        assert not any(due_within_ttl(i) for i in ids)  # created: a whole lease ahead
        keeper.reserve(ids[:2])
        deadline = time.monotonic() + 3.0  # a third of the beat interval
        while not all(due_within_ttl(i) for i in ids[:2]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(due_within_ttl(i) for i in ids[:2])
        assert not due_within_ttl(ids[2])  # not received here: untouched
        assert client.pttl(keys.alive("worker-test")) > 0
    finally:
        keeper.stop()
        client.close()
    assert client.exists(keys.alive("worker-test")) == 0  # a clean stop says so at once
