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


def test_a_task_lost_on_its_way_is_sent_again_and_a_queued_one_is_not(
    redis_server: RedisServer,
) -> None:
    """A record whose task no worker has received falls due a TTL after it was sent; the
    sweeper sends it again only once a worker has received a task sent after it (the
    queue moved past it: lost) or a whole lease after it was sent, and otherwise looks at
    it again later (still queued: another copy would only lengthen the queue)."""
    ttl_s, lease_s = 0.5, 4.0

    async def scenario() -> None:
        client = async_client(redis_server.url)
        ledger = Ledger(client, lease_s=lease_s, retention_s=3600, hold_s=ttl_s)
        keeper = LeaseKeeper(redis_server.url, "worker-test", 30.0)
        try:
            lost, queued, later = (
                Delivery(f"d{n}", "sub", "alice", "webhook", f"e{n}") for n in range(3)
            )
            await ledger.create([(lost, "orders.1", "t", b"{}")])
            await ledger.create([(queued, "orders.1", "t", b"{}")])
            await asyncio.sleep(ttl_s + 0.2)
            # due, but nothing sent after them has reached a worker: queued, not lost
            assert await ledger.sweep(100) == ([], 2)
            assert await ledger.sweep(100) == ([], 0)  # and not due again at once
            await ledger.create([(later, "orders.1", "t", b"{}")])
            keeper.reserve([later.id])  # a worker received the later one
            deadline = time.monotonic() + 3 * ttl_s
            resent: list[str] = []
            while time.monotonic() < deadline and not resent:
                resent = (await ledger.sweep(100))[0]
                await asyncio.sleep(0.05)
            assert sorted(resent) == [lost.id, queued.id]
            # sent again: due a TTL later, handed to one sweeper only
            assert await ledger.sweep(100) == ([], 0)
        finally:
            keeper.stop()
            await client.aclose()

    asyncio.run(scenario())


def test_a_task_queued_for_a_whole_lease_is_sent_again(redis_server: RedisServer) -> None:
    """The received mark is a shortcut, not the only way: with no worker receiving
    anything, a record is sent again a lease after it was sent, no later, and looked at
    only a few times in between (after as long again as it waited)."""
    ttl_s, lease_s = 0.3, 3.0

    async def scenario() -> None:
        client = async_client(redis_server.url)
        ledger = Ledger(client, lease_s=lease_s, retention_s=3600, hold_s=ttl_s)
        try:
            d = Delivery("d0", "sub", "alice", "webhook", "e0")
            sent = time.monotonic()
            await ledger.create([(d, "orders.1", "t", b"{}")])
            looks = 0
            resent: list[str] = []
            while not resent and time.monotonic() - sent < lease_s + 1.0:
                resent, due = await ledger.sweep(100)
                looks += due
                await asyncio.sleep(0.02)
            took = time.monotonic() - sent
        finally:
            await client.aclose()
        assert resent == [d.id]
        assert lease_s - 0.1 <= took < lease_s + 0.5
        assert 2 <= looks <= 6  # 0.3, 0.6, 1.2, 2.4, 3.0 s after sending


def test_a_due_record_is_sent_again_once_the_redis_brokers_queue_is_empty(
    redis_server: RedisServer,
) -> None:
    """With a Redis broker the sweeper also reads its queue: empty, nothing sent a TTL
    ago or more is still in it, so a due record no worker received was lost (a quiet
    system has no later task to move the received mark)."""
    ttl_s, lease_s = 0.3, 60.0
    queue = keys.CELERY_PREFIX + "test-queue"

    async def scenario() -> None:
        client = async_client(redis_server.url)
        ledger = Ledger(client, lease_s=lease_s, retention_s=3600, hold_s=ttl_s)
        try:
            d = Delivery("d0", "sub", "alice", "webhook", "e0")
            await ledger.create([(d, "orders.1", "t", b"{}")])
            await client.rpush(queue, b"a task not yet taken")
            await asyncio.sleep(ttl_s + 0.1)
            assert await ledger.sweep(100, queue) == ([], 1)  # still queued: held
            await client.delete(queue)  # taken, by a worker killed before it said so
            resent: list[str] = []
            deadline = time.monotonic() + 4 * ttl_s
            while not resent and time.monotonic() < deadline:
                resent = (await ledger.sweep(100, queue))[0]
                await asyncio.sleep(0.02)
            assert resent == [d.id]
        finally:
            await client.aclose()

    asyncio.run(scenario())
