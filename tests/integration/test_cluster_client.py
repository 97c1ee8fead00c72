"""notify's Redis clients on a real Redis Cluster (``redis+cluster://``): 3 primaries
and 3 replicas of ``redis-server --cluster-enabled yes`` on loopback.

Commands on keys of different slots, a script and a pipeline on one hash tag, a
blocking XREAD; MOVED after a manual failover and ASK during a slot migration followed
by the client itself; a hung node costs one deadline; a primary killed with SIGKILL is
a few errors that notify translates into 503s, then the same clients serve from the
promoted replica. ``verify`` refuses a cluster not serving every slot, and the roles
exit 2 naming the setting for it and for a Redis broker next to a cluster store.
"""

from __future__ import annotations

import asyncio
import collections
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from notify.errors import ConfigError
from notify.redis import errors
from notify.redis.client import async_client, sync_client, verify
from tests.support.cluster import SLOTS, LocalCluster, ask, cluster_port, info_fields
from tests.support.procs import child_env
from tests.support.redis import RedisServer

TIMEOUT = 1.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One cluster for the tests that leave it whole."""
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as built:
        yield built


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A cluster of its own, for a test that kills nodes."""
    with LocalCluster(tmp_path / "cluster") as built:
        yield built


@pytest.fixture
def half_covered(tmp_path: Path) -> Iterator[RedisServer]:
    """A lone cluster-mode node that serves slots 0-8191 only (cluster_state:fail)."""
    server = RedisServer(
        tmp_path / "lone",
        port=cluster_port(set()),
        extra=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
    ).start()
    try:
        assert ask(server.port, "CLUSTER", "ADDSLOTSRANGE", "0", "8191") == "+OK"
        yield server
    finally:
        server.kill()


def key_on(cluster: LocalCluster, port: int, prefix: str = "k") -> str:
    """A key (no hash tag) of a slot the primary on ``port`` serves."""
    ranges = cluster.primaries()[port]
    for i in range(100_000):
        key = f"{prefix}{i}"
        if any(start <= key_slot(key.encode()) <= end for start, end in ranges):
            return key
    raise AssertionError(f"no key found for {port}")


def slot_of(key: str) -> int:
    return key_slot(key.encode())


def notify_role(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notify", *args],
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_async_client_commands_scripts_pipelines(cluster: LocalCluster) -> None:
    client = async_client(cluster.url, timeout=TIMEOUT, name="notify-test")
    try:
        assert type(client).__name__ == "AsyncRedisCluster"
        # keys spread over every primary: the client routes each to its slot's owner
        keys = [key_on(cluster, port) for port in cluster.primaries()]
        for i, key in enumerate(keys):
            assert await client.set(key, i)
        assert [await client.get(k) for k in keys] == [b"0", b"1", b"2"]
        owners = {cluster.primary_of(slot_of(k)) for k in keys}
        assert len(owners) == 3
        # decode_responses stays off, CLIENT SETNAME on every connection
        for port in owners:
            names = ask(port, "CLIENT", "LIST")
            assert "name=notify-test" in names, names

        # a script on keys of one hash tag (one slot): EVALSHA, loaded on NOSCRIPT
        script = client.register_script(
            "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('INCRBY', KEYS[2], ARGV[2])"
        )
        assert await script(keys=["{t}:a", "{t}:b"], args=["x", 5]) == 5
        assert await script(keys=["{t}:a", "{t}:b"], args=["y", 2]) == 7
        assert await client.get("{t}:a") == b"y"

        pipe = client.pipeline(transaction=False)
        pipe.set("{t}:c", "1")
        pipe.incr("{t}:c")
        pipe.get("{t}:c")
        pipe.delete("{t}:c")
        assert await pipe.execute() == [True, 2, b"2", 1]
    finally:
        await client.aclose()


async def test_blocking_xread_is_answered_by_an_xadd_from_another_client(
    cluster: LocalCluster,
) -> None:
    reader = async_client(cluster.url, timeout=TIMEOUT, block_seconds=5.0, max_connections=2)
    writer = async_client(cluster.url, timeout=TIMEOUT)
    try:

        async def xread() -> Any:
            return await reader.xread({"{s}:log": "$"}, block=5000)

        started = time.monotonic()
        read = asyncio.create_task(xread())
        # longer than the command deadline: the reader's deadline is block + deadline
        await asyncio.sleep(TIMEOUT + 0.5)
        added = await writer.xadd("{s}:log", {"n": "1"})
        got = await asyncio.wait_for(read, 5)
        assert got == [[b"{s}:log", [(added, {b"n": b"1"})]]]
        assert time.monotonic() - started < TIMEOUT + 3
    finally:
        await reader.aclose()
        await writer.aclose()


def test_sync_client_commands_scripts_pipelines(cluster: LocalCluster) -> None:
    client = sync_client(cluster.url, timeout=TIMEOUT)
    try:
        assert type(client).__name__ == "SyncRedisCluster"
        keys = [key_on(cluster, port, "s") for port in cluster.primaries()]
        for i, key in enumerate(keys):
            assert client.set(key, i)
        assert [client.get(k) for k in keys] == [b"0", b"1", b"2"]
        script = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        assert script(keys=["{u}:n"], args=[3]) == 3
        pipe = client.pipeline(transaction=False)
        pipe.incr("{u}:n")
        pipe.get("{u}:n")
        assert pipe.execute() == [4, b"4"]
    finally:
        client.close()


async def test_moved_after_a_manual_failover_is_followed(cluster: LocalCluster) -> None:
    """The old primary, now a replica, answers MOVED on the client's open connection;
    the client patches its slot map and sends the command to the new primary."""
    client = async_client(cluster.url, timeout=TIMEOUT)
    try:
        old = cluster.primary_of(slot_of("{m}"))
        assert await client.set("{m}:k", "before")
        replica = cluster.replicas_of(old)[0]
        assert ask(replica, "CLUSTER", "FAILOVER") == "+OK"
        deadline = time.monotonic() + 10
        while cluster.primary_of(slot_of("{m}")) != replica:
            assert time.monotonic() < deadline, "the manual failover did not happen"
            await asyncio.sleep(0.05)
        cluster.wait_ready(10)
        assert await client.get("{m}:k") == b"before"
        assert await client.set("{m}:k", "after")
        assert ask(replica, "GET", "{m}:k") == "after"
    finally:
        await client.aclose()


async def test_ask_during_a_slot_migration_is_followed(cluster: LocalCluster) -> None:
    """A key not yet on the source of a migrating slot is served by the target, which
    the source names with ASK."""
    client = async_client(cluster.url, timeout=TIMEOUT)
    slot = slot_of("{a}")
    source = cluster.primary_of(slot)
    target = next(p for p in cluster.primaries() if p != source)
    source_id, target_id = cluster.node_id(source), cluster.node_id(target)
    setslot = ("CLUSTER", "SETSLOT", str(slot))
    try:
        assert await client.get("{a}:k") is None  # the client knows the slot's owner
        assert ask(target, *setslot, "IMPORTING", source_id) == "+OK"
        assert ask(source, *setslot, "MIGRATING", target_id) == "+OK"
        assert await client.set("{a}:k", "v")
        assert await client.get("{a}:k") == b"v"
        assert ask(target, "CLUSTER", "COUNTKEYSINSLOT", str(slot)) == ":1"
        assert ask(source, "CLUSTER", "COUNTKEYSINSLOT", str(slot)) == ":0"
    finally:
        # finish the migration: the slot is the target's now
        for port in (target, source, *cluster.primaries()):
            ask(port, *setslot, "NODE", target_id)
        cluster.wait_ready(10)
        await client.aclose()
    assert cluster.primary_of(slot) == target


async def test_a_hung_primary_costs_one_deadline_not_three(cluster: LocalCluster) -> None:
    """SIGSTOP for less than the node timeout: the command times out once (redis-py's
    cluster client would send it twice more), and works again after SIGCONT."""
    client = async_client(cluster.url, timeout=0.3)
    port = cluster.primary_of(slot_of("{h}"))
    try:
        assert await client.set("{h}:k", "1")
        cluster.stop(port)
        try:
            started = time.monotonic()
            with pytest.raises(redis.exceptions.TimeoutError) as got:
                await client.get("{h}:k")
            took = time.monotonic() - started
        finally:
            cluster.cont(port)
        assert errors.unavailable(got.value) is not None
        assert took < 0.6, f"a hung node cost {took:.2f} s"
        deadline = time.monotonic() + 5
        while True:
            try:
                assert await client.get("{h}:k") == b"1"
                break
            except redis.RedisError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()


def test_verify_passes_on_a_whole_cluster_and_when_nothing_answers(
    cluster: LocalCluster,
) -> None:
    verify(cluster.url, timeout=TIMEOUT)
    # no startup node answers: the roles wait for Redis, as for a plain Redis
    verify(f"redis+cluster://127.0.0.1:{cluster_port(set())}", timeout=TIMEOUT)


def test_verify_refuses_a_cluster_not_serving_every_slot(half_covered: RedisServer) -> None:
    url = f"redis+cluster://127.0.0.1:{half_covered.port}"
    with pytest.raises(ConfigError, match="NOTIFY_REDIS_URL") as got:
        verify(url, timeout=TIMEOUT)
    assert "not fully covered" in str(got.value)
    assert f"8192 of {SLOTS} slots" in str(got.value)


def test_verify_refuses_a_redis_not_in_cluster_mode(redis_server: RedisServer) -> None:
    with pytest.raises(ConfigError, match="NOTIFY_REDIS_URL") as got:
        verify(f"redis+cluster://127.0.0.1:{redis_server.port}", timeout=TIMEOUT)
    assert "not a cluster node" in str(got.value)


def test_roles_exit_2_on_an_uncovered_cluster_and_on_a_redis_broker(
    half_covered: RedisServer, cluster: LocalCluster
) -> None:
    uncovered = notify_role(
        "dispatcher",
        NOTIFY_REDIS_URL=f"redis+cluster://127.0.0.1:{half_covered.port}",
        NOTIFY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//",
    )
    assert uncovered.returncode == 2, uncovered.stderr
    assert "NOTIFY_REDIS_URL" in uncovered.stderr
    assert "not fully covered" in uncovered.stderr
    # Celery's broker would be the store, and kombu has no Redis Cluster transport
    no_broker = notify_role("worker", NOTIFY_REDIS_URL=cluster.url)
    assert no_broker.returncode == 2, no_broker.stderr
    assert "NOTIFY_BROKER_URL" in no_broker.stderr


Probe = Callable[[], Awaitable[object]]


async def test_a_killed_primary_is_503s_then_the_same_clients_serve(
    fresh_cluster: LocalCluster,
) -> None:
    """SIGKILL of a primary: every error the clients raise meanwhile is one notify
    answers with 503 (``errors.unavailable``), and the same client objects serve again
    once the replica is promoted: commands on the lost slots and on the others, a
    script, a pipeline, a blocking read, the blocking-I/O client."""
    cluster = fresh_cluster
    client = async_client(cluster.url, timeout=TIMEOUT)
    reader = async_client(cluster.url, timeout=TIMEOUT, block_seconds=1.0)
    blocking = sync_client(cluster.url, timeout=TIMEOUT)
    victim = cluster.primary_of(slot_of("{v}"))
    other = key_on(cluster, next(p for p in cluster.primaries() if p != victim))
    script = client.register_script("return redis.call('INCR', KEYS[1])")

    async def sync_incr() -> object:
        return await asyncio.to_thread(blocking.incr, "{v}:sync")

    async def pipeline() -> object:
        pipe = client.pipeline(transaction=False)
        pipe.incr("{v}:p")
        return await pipe.execute()

    probes: dict[str, Probe] = {
        "command, lost slot": lambda: client.incr("{v}:n"),
        "command, other slot": lambda: client.incr(other),
        "script": lambda: script(keys=["{v}:script"]),
        "pipeline": pipeline,
        "blocking read": lambda: reader.xread({"{v}:log": "0"}, block=200),
        "sync client": sync_incr,
    }
    try:
        for probe in probes.values():
            await probe()
        started = time.monotonic()
        cluster.kill(victim)
        seen: collections.Counter[str] = collections.Counter()
        untranslated: list[BaseException] = []
        failed_last: dict[str, float] = {}
        # rounds of every probe until one round where all of them succeed
        while True:
            elapsed = time.monotonic() - started
            assert elapsed < 25, f"not served again within 25 s: {seen}"
            failed = False
            for name, probe in probes.items():
                try:
                    await probe()
                except Exception as exc:
                    failed = True
                    failed_last[name] = round(time.monotonic() - started, 2)
                    seen[f"{type(exc).__name__} ({name})"] += 1
                    if errors.unavailable(exc) is None:
                        untranslated.append(exc)
            if not failed:
                break
            await asyncio.sleep(0.05)
        promoted = cluster.wait_failover(victim, 10)
        print(
            f"failover {victim} -> {promoted}: all served again after {elapsed:.2f} s;"
            f" last error of each at {failed_last}; errors {dict(seen)}"
        )
        assert not untranslated, untranslated
        assert "command, lost slot" in failed_last, "was the primary really killed?"
        assert cluster.primary_of(slot_of("{v}")) == promoted
    finally:
        await client.aclose()
        await reader.aclose()
        blocking.close()


async def test_a_cluster_no_node_of_which_answers_is_a_503(fresh_cluster: LocalCluster) -> None:
    client = async_client(fresh_cluster.url, timeout=TIMEOUT)
    try:
        assert await client.set("{d}:k", "1")
        for port in fresh_cluster.ports:
            fresh_cluster.kill(port)
        # past redis-py's minimum interval between two refreshes of the slot map
        started = time.monotonic()
        while time.monotonic() - started < 2.5:
            with pytest.raises(Exception) as got:
                await client.get("{d}:k")
            assert errors.unavailable(got.value) is not None, repr(got.value)
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


def test_cluster_info_fields_are_read(cluster: LocalCluster) -> None:
    fields = info_fields(ask(cluster.ports[0], "CLUSTER", "INFO"))
    assert fields["cluster_state"] == "ok"
    assert fields["cluster_slots_assigned"] == str(SLOTS)
    assert all(cluster.cpu_seconds(port) > 0 for port in cluster.ports)
