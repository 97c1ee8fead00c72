"""A short mixed fault scenario (the long soak is ``bench/chaos.py``).

While events are published without pause, two gateways serve SSE and WebSocket
clients that fail over and resume with their last id; a gateway, the dispatcher and a
worker are killed with SIGKILL and restarted; Redis (append-only file, fsync always)
is killed with SIGKILL and restarted; the webhook receiver answers 500 for a while.
Afterwards every client holds every accepted event of its channels exactly once, in
order, and every (subscription, event) pair has exactly one delivery record, delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import httpx
import pytest
import redis

from notify import keys
from notify.channels import matches
from tests.integration.delivery_stack import Stack, make_stack
from tests.support.factories import GatewayFactory, RedisFactory, TokenMaker
from tests.support.procs import Gateway
from tests.support.smtp_server import SmtpServer
from tests.support.streamers import StreamClient
from tests.support.webhook_receiver import Answer, Receiver

pytestmark = pytest.mark.asyncio

CHANNELS = ("orders.a", "orders.b", "orders.c.x", "orders.c.y")
CLIENTS: list[tuple[str, list[str]]] = [
    ("sse", ["orders.>"]),
    ("ws", ["orders.>"]),
    ("sse", ["orders.a"]),
    ("ws", ["orders.b", "orders.c.*"]),
    ("sse", ["orders.c.*"]),
    ("ws", ["orders.a"]),
]
PATHS = ("/w1", "/w2", "/w3")
BATCH = 4


class Publisher:
    """Publishes batches, alternating gateways; a batch that fails is retried with the
    same Idempotency-Key, so it is stored once. ``accepted`` holds the ids of 202s."""

    def __init__(self, gateways: list[Gateway], token: str) -> None:
        self.gateways = gateways
        self.headers = {"authorization": f"Bearer {token}"}
        self.accepted: list[str] = []
        self.retries = 0
        self._n = 0

    async def batch(self, client: httpx.AsyncClient) -> None:
        self._n += 1
        events = [
            {"channel": CHANNELS[(self._n + i) % len(CHANNELS)], "type": "t", "data": i}
            for i in range(BATCH)
        ]
        headers = {**self.headers, "idempotency-key": f"b{self._n}"}
        for attempt in range(200):
            gateway = self.gateways[(self._n + attempt) % len(self.gateways)]
            try:
                r = await client.post(
                    gateway.url("/v1/events/batch"), json={"events": events}, headers=headers
                )
            except httpx.TransportError:
                r = None
            if r is not None and r.status_code == 202:
                self.accepted += r.json()["ids"]
                return
            assert r is None or r.status_code == 503, r.text
            self.retries += 1
            await asyncio.sleep(0.05)
        raise AssertionError("a batch was never accepted")


async def test_mixed_faults_lose_nothing(
    redis_factory: RedisFactory,
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
    receiver: Receiver,
    smtp: SmtpServer,
    tmp_path_factory: pytest.TempPathFactory,
    jwt_secret: str,
) -> None:
    server = redis_factory(appendonly=True, appendfsync="always")
    stack = make_stack(
        gateway_factory,
        make_token,
        tmp_path_factory.mktemp("chaos"),
        server.url,
        NOTIFY_SMTP_URL=smtp.url,
        NOTIFY_EMAIL_FROM="notify@notify.test",
        NOTIFY_JWT_SECRET=jwt_secret,
    )
    try:
        await _scenario(stack, gateway_factory, make_token, receiver, smtp, server)
    finally:
        stack.close()
        print(stack.logs())


async def _scenario(
    stack: Stack,
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
    receiver: Receiver,
    smtp: SmtpServer,
    server: Any,
) -> None:
    a = stack.gateway
    b = gateway_factory(server.url, **stack.env)
    dispatcher, worker = stack.procs
    subs: dict[str, str] = {}
    for path in PATHS:
        created = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url(path)})
        subs[created["id"]] = path
    mail_sub = stack.subscribe("orders.>", {"kind": "email", "to": "c@example.com"})["id"]

    token = make_token("chaos", publish=["orders.>"], subscribe=["orders.>"])
    addresses = [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]
    clients = [
        StreamClient(f"c{n}", kind, addresses[n % 2 :] + addresses[: n % 2], chans, token)  # type: ignore[arg-type]
        for n, (kind, chans) in enumerate(CLIENTS)
    ]
    tasks = [asyncio.create_task(c.run()) for c in clients]
    await _wait(lambda: all(c.stats.connects for c in clients), "clients to connect")
    publisher = Publisher([a, b], token)
    done = asyncio.Event()

    async def publish() -> None:
        async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
            for _ in range(2000):
                if done.is_set():
                    return
                await publisher.batch(http)
                await asyncio.sleep(0.1)

    publishing = asyncio.create_task(publish())
    await asyncio.sleep(1.0)
    await asyncio.to_thread(a.restart)  # SIGKILL, then up again on its port
    await asyncio.sleep(0.5)
    dispatcher.kill()
    await asyncio.to_thread(dispatcher.start)
    receiver.answer(PATHS[0], default=Answer(status=500))
    await asyncio.sleep(0.5)
    worker.kill()
    await asyncio.to_thread(worker.start)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(server.restart, graceful=False)  # SIGKILL: fsync always keeps all
    receiver.answer(PATHS[0], default=Answer())
    await asyncio.sleep(1.0)
    done.set()
    await publishing

    accepted = publisher.accepted
    stored = await asyncio.to_thread(_history, stack)
    assert set(accepted) <= set(stored), "an acknowledged event is not in the log"
    assert len(stored) == len(set(stored))
    try:
        for client in clients:
            want = [i for i in stored if _covers(client.stats.channels, stack, i)]
            await _wait(_holds(client, len(want)), f"{client.stats.name} to catch up", 20)
            assert client.stats.ids == want, client.stats  # every event, once, in order
    finally:
        for client in clients:
            client.stop()
        await asyncio.gather(*tasks)

    r = redis.Redis.from_url(server.url)
    try:
        all_subs = [*subs, mail_sub]

        def settled() -> bool:
            counts = [r.zcard(keys.subscription_deliveries(s)) for s in all_subs]
            return all(c >= len(stored) for c in counts) and not _pending(stack, all_subs)

        try:
            await _wait(settled, "every delivery to finish", timeout=60)
        except AssertionError:
            state = {
                s: (
                    r.zcard(keys.subscription_deliveries(s)),
                    {st: len(stack.deliveries(s, st)) for st in ("pending", "failed")},
                )
                for s in all_subs
            }
            raise AssertionError(
                f"{len(stored)} events; per subscription (records, by status): {state}; "
                f"due: {r.zcard(keys.RETRY_DUE)}"
            ) from None
        for sub in all_subs:
            assert r.zcard(keys.subscription_deliveries(sub)) == len(stored)
    finally:
        r.close()
    for sub_id, path in subs.items():
        listed = await asyncio.to_thread(stack.deliveries, sub_id)
        assert sorted(d["event_id"] for d in listed) == sorted(stored)  # one record per pair
        assert {d["status"] for d in listed} == {"delivered"}
        assert {x.webhook_id for x in receiver.at(path)} >= {d["id"] for d in listed}
    mailed: dict[str, set[str]] = defaultdict(set)
    for mail in smtp.accepted("c@example.com"):
        mailed[mail.header("X-Notify-Event")].add(mail.header("Message-ID"))
    assert set(mailed) == set(stored)
    assert all(len(ids) == 1 for ids in mailed.values())
    assert publisher.retries > 0, "the faults should have been felt by the publisher"
    assert any(c.stats.drops for c in clients), "the gateway kill should have cut clients"


_channel_of: dict[str, str] = {}


def _history(stack: Stack) -> list[str]:
    """Every stored id on orders.>, oldest first, through the history API."""
    ids: list[str] = []
    after: str | None = None
    for _ in range(1000):
        params: dict[str, Any] = {"channel": "orders.>", "limit": 1000}
        if after:
            params["after"] = after
        page = stack.client.get("/v1/events", params=params).json()
        for event in page["events"]:
            _channel_of[event["id"]] = event["channel"]
            ids.append(event["id"])
        after = page["next"]
        if not after or not page["events"]:
            return ids
    raise AssertionError("history did not end")


def _covers(patterns: list[str], stack: Stack, event_id: str) -> bool:
    return any(matches(p, _channel_of[event_id]) for p in patterns)


def _holds(client: StreamClient, count: int) -> Any:
    return lambda: len(client.stats.ids) >= count


def _pending(stack: Stack, subs: list[str]) -> bool:
    return any(stack.deliveries(s, "pending") for s in subs)


async def _wait(check: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
