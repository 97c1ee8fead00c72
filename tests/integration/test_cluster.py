"""notify on a real Redis Cluster (``NOTIFY_REDIS_URL=redis+cluster://…``): 3 primaries
with a replica each on loopback, ``NOTIFY_SHARDS=3`` (each shard on its own primary),
Celery's broker on RabbitMQ (kombu has no Redis Cluster transport), and a primary
killed under load."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from notify import keys, shards
from tests.integration import sharding
from tests.integration.clients import sse
from tests.integration.delivery_stack import Stack, make_stack
from tests.support.cluster import LocalCluster
from tests.support.factories import GatewayFactory, ProcFactory, TokenMaker
from tests.support.ports import free_port
from tests.support.webhook_receiver import Receiver

SHARDS = sharding.SHARDS


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LocalCluster]]:
    """One cluster for the module (made once: ~3 s), in a box so that a test which
    leaves it broken gets it replaced for the next."""
    box = [LocalCluster(tmp_path_factory.mktemp("cluster")).start()]
    try:
        yield box
    finally:
        box[0].close()


@pytest.fixture
def cluster(shared_cluster: list[LocalCluster], tmp_path: Path) -> LocalCluster:
    """The module's cluster, whole (a test that kills a node revives it; one that did
    not, failing midway, has it rebuilt here) and emptied, as a fresh one would be."""
    if not shared_cluster[0].whole():
        shared_cluster[0].close()
        shared_cluster[0] = LocalCluster(tmp_path / "cluster").start()
    shared_cluster[0].flush()
    return shared_cluster[0]


def cluster_stack(
    cluster: LocalCluster,
    broker_url: str,
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
    directory: Path,
    **env: Any,
) -> Stack:
    return make_stack(
        gateway_factory,
        make_token,
        directory,
        cluster.url,
        NOTIFY_SHARDS=SHARDS,
        NOTIFY_BROKER_URL=broker_url,
        **env,
    )


def test_the_whole_service_runs_on_a_cluster_one_shard_per_primary(
    cluster: LocalCluster,
    broker_url: str,
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    homes = {cluster.primary_of(shards.slot(shards.tag(s, SHARDS))) for s in range(SHARDS)}
    assert len(homes) == SHARDS  # each shard's keys on a primary of its own
    stack = cluster_stack(cluster, broker_url, gateway_factory, make_token, tmp_path / "s")
    try:
        base = stack.gateway.base_url
        token = make_token(publish=[">"], subscribe=[">"])
        assert httpx.get(base + "/readyz", trust_env=False).status_code == 200
        sub = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url("/hook")})
        sharding.run(sharding.sse_resumes_exactly(base, token))
        sharding.run(sharding.ws_resumes_exactly(base, token))
        published = sharding.publish_round(base, token, "history")
        sharding.history_pages_cover_every_shard(base, token, published)
        batch = sharding.batch_is_idempotent_across_shards(base, token)
        sharding.run(sharding.producer_follows_the_store(base, token, cluster.url))
        # deliveries from every shard, through RabbitMQ
        stack.wait_events(sub["id"], "delivered", published + batch, timeout=90)
        # the container health check finds the dispatcher's connections on the cluster
        probe = subprocess.run(
            [sys.executable, "-m", "notify.workers.probe", "dispatcher"],
            env={**os.environ, **{k: str(v) for k, v in stack.env.items()}},
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert probe.returncode == 0, probe.stderr
        # each shard's log lives on its own primary and holds that shard's events
        for s in range(SHARDS):
            shard = keys.shard(s, SHARDS)
            port = cluster.primary_of(shards.slot(shards.tag(s, SHARDS)))
            length = int(_ask(port, "XLEN", shard.log).lstrip(":"))
            assert length > 0, (s, port)
    finally:
        stack.close()
        print(stack.logs())


def _ask(port: int, *command: str) -> str:
    from tests.support.cluster import ask

    return ask(port, *command)


def test_a_primary_killed_under_load_loses_no_acknowledged_event(
    cluster: LocalCluster,
    broker_url: str,
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """kill -9 of the primary of shard 1 while events are published on every shard,
    with a pattern stream and a webhook subscription open: publishes answer 202 or
    503 with Retry-After (never a 500), and with NOTIFY_PUBLISH_MIN_REPLICAS=1 every
    acknowledged event is streamed, kept in history and delivered, with no notify
    process restarted. The killed node, started again, rejoins as the new primary's
    replica, and shard 1 acknowledges again."""
    stack = cluster_stack(
        cluster,
        broker_url,
        gateway_factory,
        make_token,
        tmp_path / "s",
        NOTIFY_PUBLISH_MIN_REPLICAS=1,
    )
    victim = cluster.primary_of(shards.slot(shards.tag(1, SHARDS)))
    base = stack.gateway.base_url
    token = make_token(publish=[">"], subscribe=[">"])
    acked: list[str] = []
    answers: Counter[int] = Counter()
    no_retry_after: list[int] = []
    killed_at: list[float] = []
    acked_on_victim_shard_after_failover: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        with httpx.Client(base_url=base, trust_env=False, timeout=15) as client:
            n = 0
            after = acked_on_victim_shard_after_failover
            # until 60 events are acknowledged on the victim's shard after the failover
            # has finished (bounded: at most 60 s)
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline and len(after) < 60:
                channel = sharding.CHANNELS[n % len(sharding.CHANNELS)]
                n += 1
                r = client.post(
                    "/v1/events",
                    json={"channel": channel, "type": "order.placed", "data": n},
                    headers={"Authorization": f"Bearer {token}"},
                )
                answers[r.status_code] += 1
                if r.status_code == 202:
                    acked.append(r.json()["id"])
                    if failed_over.is_set() and shards.shard_of(channel, SHARDS) == 1:
                        after.append(acked[-1])
                elif "retry-after" not in r.headers:
                    no_retry_after.append(r.status_code)
                if n == 40:
                    killed_at.append(time.monotonic())
                    cluster.kill(victim)

    failed_over = threading.Event()
    try:
        sub = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url("/hook")})

        async def watch() -> list[dict[str, Any]]:
            seen: list[dict[str, Any]] = []
            last: str | None = None
            producer = threading.Thread(target=produce)
            async with sse(base, ["orders.>"], token) as stream:
                last = await stream.position()
                producer.start()
                await asyncio.to_thread(lambda: _wait_kill(killed_at))
                await asyncio.to_thread(cluster.wait_failover, victim, 30.0)
                failed_over.set()
                # the killed node comes back as the new primary's replica, so that the
                # shard can acknowledge again (and the cluster is whole for the next test)
                await asyncio.to_thread(cluster.revive, victim)
                await asyncio.to_thread(producer.join, 90)
                assert not producer.is_alive()
                # everything acknowledged comes down the stream (resumed if cut)
                deadline = time.monotonic() + 60
                while {e["id"] for e in seen} < set(acked) and time.monotonic() < deadline:
                    try:
                        frame = await stream.next(timeout=5)
                    except (EOFError, TimeoutError):
                        break
                    seen.append(frame.json)
                    last = frame.id
            missing = set(acked) - {e["id"] for e in seen}
            if missing:
                async with sse(base, ["orders.>"], token, last_event_id=last) as again:
                    await again.position()
                    while missing and time.monotonic() < deadline:
                        frame = await again.next(timeout=10)
                        seen.append(frame.json)
                        missing.discard(frame.json["id"])
            return seen

        seen = asyncio.run(watch())
        assert answers[202] > 100, answers
        assert len(acked_on_victim_shard_after_failover) == 60, answers
        assert set(answers) <= {202, 503}, answers
        assert not no_retry_after
        assert {e["id"] for e in seen} >= set(acked)
        streamed = [e for e in seen if e["id"] in set(acked)]
        sharding.check_ids(_once(streamed), acked)
        # every acknowledged event is in history, read back from the new primary
        in_history = _history_ids(base, token)
        assert set(acked) <= in_history, sorted(set(acked) - in_history)[:5]
        # and delivered, by the same dispatcher and worker
        stack.wait_events(sub["id"], "delivered", acked, timeout=120)
        assert all(p.running for p in stack.procs) and stack.gateway.running
    finally:
        stop.set()
        stack.close()
        print(stack.logs())


def _wait_kill(killed_at: list[float], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not killed_at:
        assert time.monotonic() < deadline, "the producer never reached the kill"
        time.sleep(0.05)


def _once(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stream's events without the repeats a resume after a cut may bring."""
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        out.setdefault(e["id"], e)
    return list(out.values())


def _history_ids(base: str, token: str) -> set[str]:
    ids: set[str] = set()
    after: str | None = None
    with httpx.Client(base_url=base, trust_env=False, timeout=10) as client:
        for _ in range(1000):
            params = {"channel": "orders.>", "limit": "1000"}
            if after:
                params["after"] = after
            r = client.get(
                "/v1/events", params=params, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 200, r.text
            ids |= {e["id"] for e in r.json()["events"]}
            after = r.json()["next"]
            if after is None:
                return ids
    raise AssertionError("history did not end")


def test_roles_started_before_the_cluster_answers_wait_for_it(
    proc_factory: ProcFactory, broker_url: str
) -> None:
    """No node answers yet (a cluster starting after notify): the dispatcher and the
    worker stay up and say so in their logs, instead of failing their start (the
    blocking cluster client reads the slot map as it is made)."""
    nowhere = f"redis+cluster://127.0.0.1:{free_port()}"
    roles = [
        proc_factory(role, redis_url=nowhere, NOTIFY_BROKER_URL=broker_url)
        for role in ("dispatcher", "worker")
    ]
    # each has met the unreachable cluster (bounded: slow starts under load), then
    # goes on waiting through more of its retry rounds
    deadline = time.monotonic() + 60
    while not all(p.log_text().count("RedisClusterUnreachableError") >= 2 for p in roles):
        assert time.monotonic() < deadline, [p.log_tail() for p in roles]
        assert all(p.running for p in roles), [p.log_tail() for p in roles]
        time.sleep(0.2)
    for proc in roles:
        log = proc.log_text()
        assert proc.running, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        assert "celery worker exited" not in log, log[-3000:]


def test_a_hung_replica_makes_its_shards_publishes_503_until_it_answers(
    cluster: LocalCluster, gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    """With NOTIFY_PUBLISH_MIN_REPLICAS=1, a shard whose replica hangs (SIGSTOP) cannot
    acknowledge: its publishes answer 503 with Retry-After (never a 500), the other
    shards' go on, and it acknowledges again once the replica answers, no restart."""
    gateway = gateway_factory(
        cluster.url,
        NOTIFY_SHARDS=SHARDS,
        NOTIFY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//",  # not used by a gateway
        NOTIFY_PUBLISH_MIN_REPLICAS=1,
    )
    token = make_token(publish=[">"])
    on = {shards.shard_of(c, SHARDS): c for c in sharding.CHANNELS}
    replica = cluster.replicas_of(cluster.primary_of(shards.slot(shards.tag(1, SHARDS))))[0]

    def post(channel: str) -> httpx.Response:
        return httpx.post(
            gateway.url("/v1/events"),
            json={"channel": channel, "type": "t", "data": None},
            headers={"Authorization": f"Bearer {token}"},
            trust_env=False,
            timeout=15,
        )

    assert post(on[1]).status_code == 202
    cluster.stop(replica)
    try:
        hung = post(on[1])
        assert hung.status_code == 503, hung.text
        assert "retry-after" in hung.headers
        assert post(on[0]).status_code == 202  # another shard, another replica
    finally:
        cluster.cont(replica)
    deadline = time.monotonic() + 30
    while (answer := post(on[1])).status_code != 202:
        assert answer.status_code == 503, answer.text
        assert time.monotonic() < deadline, "the shard never acknowledged again"
        time.sleep(0.2)
