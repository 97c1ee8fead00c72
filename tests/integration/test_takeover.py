"""Crashed work is taken over in seconds (SPEC 2.5), with production leases and claim idle
times, so only the heartbeats can make it quick; a slow but alive worker keeps its lease."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import NamedTuple

import httpx
import redis

from notify import keys
from notify.workers.celery_app import QUEUE
from tests.integration.conftest import StackFactory
from tests.integration.delivery_stack import Stack
from tests.support.ports import free_port
from tests.support.procs import Proc
from tests.support.redis import RedisServer
from tests.support.webhook_receiver import Answer, Receiver

# the defaults: a lost lease or an idle entry alone would take 60 s or 30 s
PRODUCTION = {
    "NOTIFY_DELIVERY_LEASE_SECONDS": "60",
    "NOTIFY_DISPATCH_CLAIM_IDLE_SECONDS": "30",
    "NOTIFY_SWEEP_INTERVAL_SECONDS": "0.25",
    "NOTIFY_HEARTBEAT_SECONDS": "3",
}
TAKEOVER = 5.0
SLACK = 5.0  # two shared cores: processing after the takeover, and scheduling under load


def ready(proc: Proc, port: int, timeout: float = 120.0) -> None:
    proc.wait_http_ready(f"http://127.0.0.1:{port}/readyz", timeout)


def start_worker(stack: Stack, name: str) -> tuple[Proc, int]:
    port = free_port()
    return stack.worker(name=name, NOTIFY_HEALTH_PORT=port), port


def webhook(stack: Stack, receiver: Receiver, path: str) -> str:
    created = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url(path)})
    receiver.trust(path, created["secret"])
    return str(created["id"])


def test_killed_dispatcher_and_worker_are_taken_over_within_seconds(
    stack_factory: StackFactory, receiver: Receiver, redis_server: RedisServer
) -> None:
    stack = stack_factory(workers=0, **PRODUCTION)
    first = stack.procs[0]
    stack.dispatcher(name="dispatcher2")
    workers = [start_worker(stack, f"worker{n}") for n in range(2)]
    for proc, port in workers:
        ready(proc, port)
    paths = {webhook(stack, receiver, p): p for p in ("/a", "/b")}
    for path in paths.values():
        receiver.answer(path, default=Answer(delay=0.3))  # batches stay in flight a while
    total_events = 300

    def publish() -> None:
        for start in range(0, total_events, 20):
            events = [
                {"channel": f"orders.{n % 5}", "type": "order.created", "data": n}
                for n in range(start, start + 20)
            ]
            published.extend(stack.publish_many(events))
            time.sleep(0.1)

    published: list[str] = []
    publisher = threading.Thread(target=publish)
    publisher.start()
    stack.wait_for("deliveries under way", lambda: len(receiver.received) >= 100, timeout=60)
    killed_at = time.monotonic()
    first.kill()
    workers[0][0].kill()
    first.start()  # replacements at once; the survivors do not wait for them
    workers[0][0].start()
    publisher.join()

    client = redis.Redis.from_url(redis_server.url)
    try:
        expected = total_events * len(paths)

        def finished() -> bool:
            created = sum(client.zcard(keys.subscription_deliveries(s)) for s in paths)
            return created == expected and not client.zcard(keys.RETRY_DUE)

        stack.wait_for("every delivery to finish", finished, timeout=60, every=0.1)
        records = list(client.scan_iter(keys.delivery("*"), count=1000))
        assert len(records) == expected  # one record per (subscription, event)
        for sub_id, path in paths.items():
            listed = stack.deliveries(sub_id)
            assert {d["event_id"] for d in listed} == set(published)
            assert {d["status"] for d in listed} == {"delivered"}
            assert {r.webhook_id for r in receiver.at(path)} >= {d["id"] for d in listed}
        last = max(r.at for r in receiver.received)
        late = [r.webhook_id for r in receiver.received if r.at - killed_at >= TAKEOVER + SLACK]
        # what a late one went through, for the failure message
        story = [
            (i, client.hgetall(keys.delivery(i)), client.lrange(keys.delivery_attempts(i), 0, -1))
            for i in late[:3]
        ]
    finally:
        client.close()
    # the publisher was still sending for about a second after the kill
    assert last - killed_at < TAKEOVER + SLACK, (
        f"last delivery {last - killed_at:.1f} s after; {len(late)} late: {story}"
    )


def test_entries_of_a_consumer_without_heartbeat_move_and_a_live_ones_stay(
    stack_factory: StackFactory, receiver: Receiver, redis_server: RedisServer
) -> None:
    stack = stack_factory(**PRODUCTION)
    dispatcher = stack.procs[0]
    sub = webhook(stack, receiver, "/h")
    stack.publish("orders.1")
    receiver.wait("/h", 1, timeout=90)  # the worker consumes
    client = redis.Redis.from_url(redis_server.url)
    try:
        dispatcher.kill(signal.SIGSTOP)  # so that two consumers of our own read first
        # a read the dispatcher had blocked in before it stopped is still served to it
        for n in range(3):
            stack.publish(f"orders.{n}")
        held = {}
        for name in ("ghost-dead", "ghost-alive"):
            reply = client.xreadgroup(keys.DISPATCH_GROUP, name, {keys.LOG: ">"}, count=1)
            held[name] = reply[0][1][0][0].decode()
        dead, alive = held["ghost-dead"], held["ghost-alive"]
        client.set(keys.alive("ghost-alive"), b"1", px=60_000)
        time.sleep(1.5)  # the dead one's entry has been idle a while, as after a crash
        resumed = time.monotonic()
        dispatcher.kill(signal.SIGCONT)

        stack.wait_events(sub, "delivered", [dead], timeout=TAKEOVER + SLACK)
        took = time.monotonic() - resumed
        time.sleep(4)  # more than a heartbeat TTL: the live consumer keeps its entry
        assert alive not in {d["event_id"] for d in stack.deliveries(sub)}
        pending = client.xpending_range(keys.LOG, keys.DISPATCH_GROUP, "-", "+", 10)
        assert [p["consumer"] for p in pending] == [b"ghost-alive"]

        client.delete(keys.alive("ghost-alive"))  # it dies
        stack.wait_events(sub, "delivered", [alive], timeout=TAKEOVER + SLACK)
    finally:
        client.close()
    assert took < TAKEOVER + SLACK
    assert "took over 1 pending entries" in dispatcher.log_text()


def test_a_task_lost_on_its_way_is_sent_again_and_a_queued_one_is_left_queued(
    stack_factory: StackFactory, receiver: Receiver, redis_server: RedisServer
) -> None:
    # A worker takes a task off the Redis broker (BRPOP) and only then reserves its
    # deliveries: killed in between, the task is gone from the broker (kombu restores
    # it an hour later, the visibility timeout), and its deliveries must not wait out
    # the 60 s lease. Tasks merely queued, with no worker to take them, must not be sent
    # again and again meanwhile.
    stack = stack_factory(workers=0, **(PRODUCTION | {"NOTIFY_HEARTBEAT_SECONDS": "1"}))
    sub = webhook(stack, receiver, "/t")
    queue = keys.CELERY_PREFIX + QUEUE
    client = redis.Redis.from_url(redis_server.url)
    events: list[str] = []
    try:
        for n in range(3):  # a task each
            events.append(stack.publish(f"orders.{n}"))
            stack.wait_for("its task", lambda: client.llen(queue) == len(events), timeout=30)
        time.sleep(4)  # four heartbeat TTLs: each record fell due, and was looked at
        assert client.llen(queue) == 3  # no copies: the queue has not reached them
        lost = client.rpop(queue)  # the oldest, as a worker's BRPOP; then it is killed
        assert lost is not None and b"notify.deliver" in lost
        worker, port = start_worker(stack, "worker")
        ready(worker, port)
        started = time.monotonic()
        # the worker receives the other two, sent after the lost one: that is the sign
        stack.wait_events(sub, "delivered", events, timeout=TAKEOVER + SLACK)
        took = time.monotonic() - started
        listed = stack.deliveries(sub)
    finally:
        client.close()
    assert [d["attempts"][0]["outcome"] for d in listed] == ["delivered"] * 3
    assert took < TAKEOVER + SLACK


class Frozen(NamedTuple):
    """A worker whose main process received a task its frozen pool never claimed."""

    stack: Stack
    worker: Proc
    pool: list[int]
    subscription: str
    event: str


def received_by_a_frozen_pool(
    stack_factory: StackFactory, receiver: Receiver, redis_server: RedisServer
) -> Frozen:
    """A stack with one worker whose pool is stopped (SIGSTOP), and one event published
    and received, so reserved, by the worker's main process."""
    stack = stack_factory(workers=0, **PRODUCTION)
    worker, port = start_worker(stack, "worker")
    ready(worker, port)
    sub = webhook(stack, receiver, "/h")
    [celery] = children(worker.pid)
    pool = children(celery)
    assert pool, "a prefork pool"
    for pid in pool:
        os.kill(pid, signal.SIGSTOP)
    event = stack.publish("orders.1")
    with redis.Redis.from_url(redis_server.url) as client:

        def reserved() -> bool:
            # the worker moved the received mark up to the record's sending
            listed = stack.deliveries(sub)
            sent = client.hget(keys.delivery(listed[0]["id"]), "sent_ms") if listed else None
            mark = client.get(keys.DELIVERIES_RECEIVED)
            return sent is not None and mark is not None and int(mark) >= int(sent)

        stack.wait_for("the received delivery to be reserved", reserved, timeout=30, every=0.05)
    return Frozen(stack, worker, pool, sub, event)


def test_a_worker_killed_before_claiming_what_it_received_is_taken_over(
    stack_factory: StackFactory, receiver: Receiver, redis_server: RedisServer
) -> None:
    # the worker's main process takes tasks from the broker and hands them to its pool;
    # with the pool frozen, what it received is never claimed, and only its reservation
    # keeps the deliveries from waiting out the 60 s lease set when they were created
    frozen = received_by_a_frozen_pool(stack_factory, receiver, redis_server)
    frozen.worker.kill()  # the frozen pool goes with it
    frozen.stack.worker(name="worker2")
    # the heartbeat TTL and a worker's start, where the lease alone would take 60 s
    frozen.stack.wait_events(
        frozen.subscription, "delivered", [frozen.event], timeout=TAKEOVER + SLACK + 10
    )


def test_a_task_that_fails_before_claiming_lets_its_deliveries_go(
    stack_factory: StackFactory, receiver: Receiver, redis_server: RedisServer
) -> None:
    # A task that fails before it claims its deliveries (Redis failing over under it,
    # here Redis refusing scripts for a moment) is acknowledged by the worker's main
    # process, which must then stop reserving them: otherwise it keeps them from falling
    # due for as long as it lives, and they are never sent.
    stack, worker, pool, sub, event = received_by_a_frozen_pool(
        stack_factory, receiver, redis_server
    )
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.execute_command("ACL", "SETUSER", "default", "-eval", "-evalsha")
        try:
            # as after a failover that refused the reservation too: the delivery is
            # due only when the lease set at its creation runs out
            [record] = stack.deliveries(sub)
            seconds, _ = client.time()
            client.zadd(keys.RETRY_DUE, {record["id"]: (seconds + 60) * 1000})
            for pid in pool:
                os.kill(pid, signal.SIGCONT)
            stack.wait_for(
                "the task to fail", lambda: "raised unexpected" in worker.log_text(), timeout=30
            )
        finally:
            client.execute_command("ACL", "SETUSER", "default", "+eval", "+evalsha")
        stack.wait_events(sub, "delivered", [event], timeout=TAKEOVER + SLACK)
    finally:
        client.close()


def test_a_slow_worker_keeps_its_lease(stack_factory: StackFactory, receiver: Receiver) -> None:
    # a 2 s heartbeat and an 8 s answer: without renewal the lease would lapse four
    # times over and the worker's second process would send the delivery again
    stack = stack_factory(
        workers=0,
        NOTIFY_HEARTBEAT_SECONDS="2",
        NOTIFY_WEBHOOK_TIMEOUT_SECONDS="20",
        NOTIFY_DELIVERY_LEASE_SECONDS="60",
    )
    worker, port = start_worker(stack, "worker")
    ready(worker, port)
    sub = webhook(stack, receiver, "/slow")
    receiver.answer("/slow", Answer(delay=8.0))
    event = stack.publish("orders.1")
    receiver.wait("/slow", 1, timeout=30)
    [done] = stack.wait_events(sub, "delivered", [event], timeout=20)
    time.sleep(1)
    assert len(receiver.at("/slow")) == 1
    assert [a["outcome"] for a in done["attempts"]] == ["delivered"]


def test_a_frozen_worker_loses_its_lease_and_its_late_success_is_recorded_once(
    stack_factory: StackFactory, receiver: Receiver, redis_server: RedisServer
) -> None:
    # the receiver holds the first request open; the pool process that sent it is frozen
    # past the heartbeat, so its lease lapses and another worker sends the delivery; then
    # it wakes, its old request is answered 200, and that late success joins the same
    # record's attempts, which stays delivered as the other worker left it
    stack = stack_factory(workers=0, **PRODUCTION, NOTIFY_WEBHOOK_TIMEOUT_SECONDS="30")
    port = free_port()
    # one pool process, whose task fills the worker's prefetch: the delivery taken over
    # goes to the other worker, not to this one's frozen pool
    first_worker = stack.worker(concurrency=1, name="worker1", NOTIFY_HEALTH_PORT=port)
    ready(first_worker, port)
    sub = webhook(stack, receiver, "/h")
    answered = threading.Event()
    receiver.answer("/h", Answer(release=answered))  # the requests after it: 200 at once
    client = redis.Redis.from_url(redis_server.url)
    frozen: list[int] = []
    try:
        event = stack.publish("orders.1")
        [held] = receiver.wait("/h", 1, timeout=30)
        second_worker, second_port = start_worker(stack, "worker2")
        ready(second_worker, second_port)
        # alive all this while (the first half of the claim): the lease is still held
        assert [d["status"] for d in stack.deliveries(sub)] == ["pending"]
        assert len(receiver.at("/h")) == 1
        [celery] = children(first_worker.pid)
        [pool] = children(celery)
        os.kill(pool, signal.SIGSTOP)
        frozen.append(pool)
        # its heartbeat stops with it: within the TTL its lease lapses and is taken over
        [taken_over] = stack.wait_events(sub, "delivered", [event], timeout=TAKEOVER + SLACK)
        os.kill(frozen.pop(), signal.SIGCONT)
        answered.set()

        def finishes() -> int:
            return int(client.hget(keys.DELIVERY_METRICS, "webhook:delivered") or 0)

        # both tasks' outcomes reached Redis, however the late one is recorded
        stack.wait_for("the late success to be recorded", lambda: finishes() == 2, timeout=15)
        delivery_id = taken_over["id"]
        listed = stack.deliveries(sub)
        records = list(client.scan_iter(keys.delivery("*")))
        fields = client.hgetall(keys.delivery(delivery_id))
        due = client.zcard(keys.RETRY_DUE)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        answered.set()
        client.close()
    # the same delivery sent twice (at least once), each time under its one id
    assert [r.webhook_id for r in receiver.at("/h")] == [delivery_id, delivery_id]
    assert held.webhook_id == delivery_id
    assert records == [keys.delivery(delivery_id).encode()]  # one record for the pair
    assert [d["id"] for d in listed] == [delivery_id]
    [record] = listed
    assert record["status"] == "delivered"
    assert record["finished_at"] == taken_over["finished_at"]  # not ended a second time
    # the takeover's success, then the late one: sent first, recorded last, after a
    # wait longer than the heartbeat
    assert [a["outcome"] for a in record["attempts"]] == ["delivered", "delivered"]
    on_time, late = record["attempts"]
    assert on_time == taken_over["attempts"][0]
    assert late["at"] < on_time["at"]
    assert late["duration_ms"] > float(PRODUCTION["NOTIFY_HEARTBEAT_SECONDS"]) * 1000
    assert late["status_code"] == 200
    # nothing left due or leased
    assert due == 0
    assert not {b"lease", b"lease_until", b"next_ms"} & set(fields)


def test_first_delivery_after_a_redis_restart_does_not_wait_out_a_lease(
    stack_factory: StackFactory, receiver: Receiver, redis_server: RedisServer
) -> None:
    stack = stack_factory(**PRODUCTION)
    sub = webhook(stack, receiver, "/h")
    stack.publish("orders.1")
    receiver.wait("/h", 1, timeout=90)  # every process holds connections now
    client = redis.Redis.from_url(redis_server.url)
    client.save()  # loaded again at the restart: the data survives, the connections not
    client.close()
    redis_server.restart()
    event = stack.publish("orders.2")
    stack.wait_events(sub, "delivered", [event], timeout=TAKEOVER + SLACK)


def test_groups_are_recreated_after_redis_loses_its_data(
    stack_factory: StackFactory, receiver: Receiver, redis_server: RedisServer
) -> None:
    stack = stack_factory(**PRODUCTION)
    dispatcher = stack.procs[0]
    webhook(stack, receiver, "/before")
    stack.publish("orders.1")
    receiver.wait("/before", 1, timeout=90)

    redis_server.restart()  # no persistence: everything is gone
    lost_at = time.monotonic()
    stack.wait_for(
        "the groups to be created again",
        lambda: dispatcher.log_text().count("was gone") == 2,
        timeout=20,
    )
    recovered = time.monotonic() - lost_at
    sub = webhook(stack, receiver, "/after")  # the subscription was lost with the data
    event = stack.publish("orders.2")
    stack.wait_events(sub, "delivered", [event], timeout=TAKEOVER + SLACK)
    text = dispatcher.log_text()
    assert "NOGROUP" not in text  # one line saying what happened, not a loop of errors
    assert text.count("consumer group 'dispatchers'") == 1
    assert text.count("consumer group 'replayers'") == 1
    assert recovered < 10


def status(port: int, path: str) -> tuple[int, str]:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2, trust_env=False)
    except httpx.TransportError as exc:
        return 0, repr(exc)
    return r.status_code, r.text


def test_dispatcher_and_worker_health(
    stack_factory: StackFactory, redis_server: RedisServer
) -> None:
    stack = stack_factory(workers=0)
    d_port = free_port()
    dispatcher = stack.dispatcher(name="dispatcher2", NOTIFY_HEALTH_PORT=d_port)
    worker, w_port = start_worker(stack, "worker")
    ready(dispatcher, d_port)
    ready(worker, w_port)
    for port in (d_port, w_port):
        assert status(port, "/healthz")[0] == 200
        assert status(port, "/nothing")[0] == 404
    d_metrics = status(d_port, "/metrics")[1]
    assert "notify_dispatcher_taken_over_total 0" in d_metrics
    assert "notify_dispatcher_groups_recreated_total 0" in d_metrics
    assert "notify_worker_restarts_total 0" in status(w_port, "/metrics")[1]
    for port in (d_port, w_port):  # and the standard series of the process
        text = status(port, "/metrics")[1]
        assert "process_resident_memory_bytes " in text and "python_info{" in text

    redis_server.stop()
    stack.wait_for("the dispatcher to be unready", lambda: status(d_port, "/readyz")[0] == 503, 30)
    stack.wait_for("the worker to be unready", lambda: status(w_port, "/readyz")[0] == 503, 30)
    # Redis away is not a wedge: a restart would not help
    assert status(d_port, "/healthz")[0] == 200
    assert status(w_port, "/healthz")[0] == 200

    redis_server.start()
    ready(dispatcher, d_port, 30)
    ready(worker, w_port, 30)
    # whichever of the two dispatchers gets there first creates each group again
    d_ports = [d_port, int(stack.procs[0].env["NOTIFY_HEALTH_PORT"])]
    stack.wait_for(
        "both groups to be created again",
        lambda: sum(recreated(status(p, "/metrics")[1]) for p in d_ports) == 2,
        10,
    )

    celery = children(worker.pid)
    assert celery, "the supervisor runs a celery worker"
    for pid in celery:
        os.kill(pid, signal.SIGKILL)
    stack.wait_for(
        "the restart to be counted",
        lambda: "notify_worker_restarts_total 1" in status(w_port, "/metrics")[1],
        30,
    )
    ready(worker, w_port, 90)


def recreated(metrics: str) -> int:
    for line in metrics.splitlines():
        if line.startswith("notify_dispatcher_groups_recreated_total "):
            return int(float(line.split()[1]))
    return 0


def children(pid: int | None) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found
