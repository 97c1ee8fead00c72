"""Webhook delivery limits and concurrency against real processes: the per-target rate
limit, ``Retry-After`` on a 503, and two dispatchers sharing the work."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import redis

from notify import keys
from tests.integration.conftest import StackFactory
from tests.integration.delivery_stack import Stack
from tests.support.procs import descendants
from tests.support.redis import RedisServer
from tests.support.webhook_receiver import Answer, Receiver

WORKER_START = 40.0  # a Celery worker starts slowly on a busy two-core machine


def webhook(stack: Stack, receiver: Receiver, path: str) -> str:
    sub = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url(path)})
    receiver.trust(path, sub["secret"])
    return str(sub["id"])


def burst_span(stack: Stack, receiver: Receiver, path: str) -> float:
    """One event to warm the workers up, then 30 at once to one target: the seconds
    between the first and the last of the 30 to arrive, every one of them delivered."""
    webhook(stack, receiver, path)
    stack.publish("orders.eu", data={"warm": True})
    receiver.wait(path, 1, timeout=WORKER_START)
    # the workers are up; the budget is back to its burst of 10 by the time the 30 come
    ids = stack.publish_many([{"channel": "orders.eu", "type": "t", "data": n} for n in range(30)])
    got = receiver.wait(path, 31, timeout=30)[1:]
    assert sorted(json.loads(g.body)["id"] for g in got) == sorted(ids)
    return got[-1].at - min(g.at for g in got)


def test_the_per_target_rate_limit_spreads_deliveries(
    stack_factory: StackFactory, receiver: Receiver
) -> None:
    """5/s with bursts of twice the rate: 30 events take at least (30 - 10) / 5 = 4 s,
    and none is lost (the rest are deferred, not failed)."""
    stack = stack_factory(NOTIFY_WEBHOOK_TARGET_RATE="5")
    span = burst_span(stack, receiver, "/slow")
    assert span >= 3.5, span  # ~4 s; without the limit they all land within a second


def test_a_503_with_retry_after_is_retried_after_it(stack: Stack, receiver: Receiver) -> None:
    sub = webhook(stack, receiver, "/unavailable")
    receiver.answer("/unavailable", Answer(503, headers=(("retry-after", "2"),)))
    stack.publish("orders.eu")
    first, second = receiver.wait("/unavailable", 2, timeout=WORKER_START)
    assert second.at - first.at >= 1.9  # not the 0.2 s of the schedule
    [record] = stack.wait_status(sub, "delivered")
    assert record["attempts"][0]["status_code"] == 503


def test_two_dispatchers_deliver_each_event_once(
    stack: Stack, receiver: Receiver, redis_server: RedisServer
) -> None:
    """Both at once, then each alone while the other is frozen (SIGSTOP), so each is
    seen doing the work (a read the frozen one was blocked in may still be served to
    it: the other then takes those entries over once its heartbeat lapses). Every
    event is recorded and delivered once."""
    [first] = [p for p in stack.procs if p.name == "dispatcher"]
    second = stack.dispatcher(name="dispatcher2")
    stack.wait_ready(second)
    sub = webhook(stack, receiver, "/twice")

    def burst(n: int) -> list[str]:
        events = [{"channel": "orders.eu", "type": "t", "data": i} for i in range(n)]
        return stack.publish_many(events)

    ids = burst(60)
    stack.wait_status(sub, "delivered", count=len(ids), timeout=WORKER_START)
    for frozen in (first, second):
        frozen.kill(signal.SIGSTOP)
        try:
            ids += burst(20)
            stack.wait_status(sub, "delivered", count=len(ids), timeout=30)
        finally:
            frozen.kill(signal.SIGCONT)
    with redis.Redis.from_url(redis_server.url) as r:

        def settled() -> bool:
            """Every log entry read and acknowledged, and no delivery queued: nothing
            is left to route or send, by the resumed dispatcher either."""
            groups = r.xinfo_groups(keys.LOG)
            done = all(g["pending"] == 0 and g["lag"] == 0 for g in groups)
            return bool(groups) and done and r.zcard(keys.RETRY_DUE) == 0

        stack.wait_for("both dispatchers to settle", settled, timeout=30)
    assert len(stack.deliveries(sub)) == len(ids)
    got = [json.loads(g.body)["id"] for g in receiver.at("/twice")]
    assert sorted(got) == sorted(ids)  # every event once: none lost, none twice


def connected_to(port: int, pids: list[int]) -> bool:
    """Whether one of ``pids`` holds an established TCP connection to ``port`` on this
    host (from /proc/net/tcp{,6} and the processes' file descriptors)."""
    sockets: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                remote, state, inode = fields[2], fields[3], fields[9]
                if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                    sockets.add(f"socket:[{inode}]")
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in sockets:
                        return True
    return False


def test_the_per_target_rate_limit_holds_across_two_workers(
    stack_factory: StackFactory, receiver: Receiver
) -> None:
    """The same budget as above (5/s, bursts of 10) shared by two ``notify worker``
    processes, one task per delivery so that both take part: 30 events still take at
    least (30 - 10) / 5 = 4 s, and none is lost. Each worker is seen sending (it holds
    a keep-alive connection to the receiver afterwards; the dispatcher is not)."""
    stack = stack_factory(workers=2, NOTIFY_WEBHOOK_TARGET_RATE="5", NOTIFY_DELIVERY_BATCH_SIZE="1")
    workers = [p for p in stack.procs if p.name.startswith("worker")]
    assert len(workers) == 2
    span = burst_span(stack, receiver, "/shared")
    assert span >= 3.5, span  # ~4 s; a budget of each worker's own would allow ~1 s
    for worker in workers:
        assert worker.pid is not None
        sent = connected_to(receiver.port, [worker.pid, *descendants(worker.pid)])
        assert sent, f"{worker.name} sent nothing"
    [dispatcher] = [p for p in stack.procs if p.name == "dispatcher"]
    assert dispatcher.pid is not None  # it sends nothing: the look above tells them apart
    assert not connected_to(receiver.port, [dispatcher.pid, *descendants(dispatcher.pid)])
