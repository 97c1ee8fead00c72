"""`notify worker` keeps a consuming Celery worker: one that exits is started again, and
one that stops consuming while work waits is killed and replaced (real processes, real
faults: SIGKILL and SIGSTOP of the Celery process, not of the supervisor)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

from tests.integration.conftest import StackFactory
from tests.integration.delivery_stack import Stack
from tests.support.procs import Proc
from tests.support.webhook_receiver import Receiver

STALL = 5.0
"""NOTIFY_WORKER_STALL_SECONDS for these tests (the stack's delivery lease is 3 s)."""


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # the command name may hold spaces: the parent pid follows its closing ")"
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def celery_of(stack: Stack, supervisor: Proc) -> int:
    """The Celery worker process the supervisor runs."""

    def one() -> int | None:
        assert supervisor.pid is not None
        kids = children(supervisor.pid)
        return kids[0] if len(kids) == 1 else None

    pid: int = stack.wait_for("the supervised celery worker", one, timeout=20)
    return pid


def deliver_burst(stack: Stack, receiver: Receiver, sub_id: str, path: str, n: int) -> None:
    ids = stack.publish_many(
        [{"channel": "orders.eu", "type": "order.created", "data": i} for i in range(n)]
    )
    stack.wait_events(sub_id, "delivered", ids, timeout=45)
    assert {json.loads(r.body)["id"] for r in receiver.at(path)} >= set(ids)


def webhook(stack: Stack, receiver: Receiver, path: str) -> str:
    created = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url(path)})
    receiver.trust(path, created["secret"])
    sub_id: str = created["id"]
    return sub_id


def test_a_celery_worker_that_exits_is_started_again(
    stack_factory: StackFactory, receiver: Receiver
) -> None:
    stack = stack_factory(NOTIFY_WORKER_STALL_SECONDS=str(STALL))
    supervisor = stack.procs[1]
    sub_id = webhook(stack, receiver, "/exit")
    deliver_burst(stack, receiver, sub_id, "/exit", 20)

    first = celery_of(stack, supervisor)
    os.kill(first, signal.SIGKILL)
    second = stack.wait_for(
        "a new celery worker",
        lambda: (pid := celery_of(stack, supervisor)) != first and pid,
        timeout=20,
    )
    assert second != first and supervisor.running
    deliver_burst(stack, receiver, sub_id, "/exit", 50)
    assert "celery worker exited with -9; starting it again" in supervisor.log_text()
    # the delivery log records each task; Celery's two INFO lines per task are kept out
    assert "ready." in supervisor.log_text()
    assert " received" not in supervisor.log_text()
    assert "succeeded in" not in supervisor.log_text()


HUNG_LEASE = 2.0
"""NOTIFY_DELIVERY_LEASE_SECONDS for the hang test: the least the stack's 1 s webhook
timeout allows, so that the stall limit (above the lease) is waited out sooner."""
HUNG_STALL = 2.5


def test_a_worker_that_stops_consuming_is_replaced(
    stack_factory: StackFactory, receiver: Receiver
) -> None:
    stack = stack_factory(
        NOTIFY_DELIVERY_LEASE_SECONDS=str(HUNG_LEASE),
        NOTIFY_WORKER_STALL_SECONDS=str(HUNG_STALL),
    )
    supervisor = stack.procs[1]
    sub_id = webhook(stack, receiver, "/stall")
    deliver_burst(stack, receiver, sub_id, "/stall", 20)

    hung = celery_of(stack, supervisor)
    os.kill(hung, signal.SIGSTOP)  # alive, holding its connections, consuming nothing
    try:
        # work queued while it hangs is delivered once the supervisor replaces it
        deliver_burst(stack, receiver, sub_id, "/stall", 200)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGCONT)
    assert not Path(f"/proc/{hung}").exists() or hung not in children(supervisor.pid or 0)
    assert celery_of(stack, supervisor) != hung
    assert f"started no task for {HUNG_STALL:g} s" in supervisor.log_text()
