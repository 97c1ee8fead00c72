"""Takeover after a crash (issue 11 part 2): kill -9 mid-burst, time to the last delivery.

For each kind of fault (the dispatcher, a worker, both) a fresh stack with production
leases and claim idle times (60 s, 30 s): Redis with an append-only file, a gateway, two
dispatchers, two Celery workers (concurrency 2) and a webhook receiver with two
subscriptions answering after 100 ms. A burst of events is published in batches; the
dispatcher is killed with SIGKILL while it holds entries it has read and not acknowledged
(polled), a worker once a third of the deliveries have arrived (it has batches in flight);
replacements are started at once. Measured: seconds from the kill to the last delivery, and
whether every (subscription, event) pair has exactly one record, delivered.

    python bench/chaos.py --takeover            # 300 events, each fault once
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from notify import keys
from notify.auth import mint
from notify.redis.client import connect_sync
from notify.redis.subscriptions import text
from tests.support.ports import free_port
from tests.support.procs import Gateway, Proc
from tests.support.redis import RedisServer
from tests.support.webhook_receiver import Answer, Receiver

SECRET = "takeover-secret-" + "x" * 32
FAULTS = ("dispatcher", "worker", "dispatcher+worker")
PATHS = ("/a", "/b")


def wait(what: str, check: Any, timeout: float, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise RuntimeError(f"timed out waiting for {what}")


def holding(client: Any, dispatchers: list[Proc], timeout: float) -> Proc | None:
    """The dispatcher that holds pending log entries right now (polled), or None."""
    by_pid = {str(p.pid): p for p in dispatchers}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summary = client.xpending(keys.LOG, keys.DISPATCH_GROUP)
        for consumer in summary.get("consumers") or []:
            pid = text(consumer["name"]).rsplit("-", 1)[-1]
            if int(consumer["pending"]) and pid in by_pid:
                return by_pid[pid]
        time.sleep(0.001)
    return None


def one(fault: str, events: int, work: Path) -> dict[str, Any]:
    redis = RedisServer(work / "redis", appendonly=True).start()
    env: dict[str, object] = {
        "NOTIFY_REDIS_URL": redis.url,
        "NOTIFY_JWT_SECRET": SECRET,
        "NOTIFY_ALLOW_PRIVATE_TARGETS": "1",
        "NOTIFY_WEBHOOK_TARGET_RATE": "0",
    }
    receiver = Receiver().start()
    procs: list[Proc] = []
    client = connect_sync(redis.url)
    try:
        gateway = Gateway(
            redis_url=redis.url, jwt_secret=SECRET, directory=work / "gw", env=env
        ).start()
        procs.append(gateway)
        dispatchers = [
            Proc(["dispatcher"], directory=work / f"d{n}", env=env, name=f"dispatcher{n}")
            for n in range(2)
        ]
        workers = []
        for n in range(2):
            port = free_port()
            proc = Proc(
                ["worker", "--concurrency", "2"],
                directory=work / f"w{n}",
                env={**env, "NOTIFY_HEALTH_PORT": port},
                name=f"worker{n}",
            )
            workers.append((proc, port))
        for proc in [*dispatchers, *(w for w, _ in workers)]:
            procs.append(proc.start())
        for proc, port in workers:
            proc.wait_http_ready(f"http://127.0.0.1:{port}/readyz", 120)

        token = mint(SECRET, "bench", publish=[">"], subscribe=[">"])
        api = httpx.Client(
            base_url=gateway.base_url,
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
            trust_env=False,
        )
        subs = []
        for path in PATHS:
            r = api.post(
                "/v1/subscriptions",
                json={
                    "channel": "orders.>",
                    "sink": {"kind": "webhook", "url": receiver.url(path)},
                },
            )
            r.raise_for_status()
            subs.append(r.json()["id"])
            receiver.answer(path, default=Answer(delay=0.1))

        def publish() -> None:
            for start in range(0, events, 20):
                batch = [
                    {"channel": f"orders.{n % 5}", "type": "order.created", "data": n}
                    for n in range(start, start + 20)
                ]
                api.post("/v1/events/batch", json={"events": batch}).raise_for_status()
                time.sleep(0.05)

        publisher = threading.Thread(target=publish)
        publisher.start()
        expected = events * len(PATHS)
        victims = []
        if "dispatcher" in fault:
            # the dispatcher caught holding entries it read and has not acknowledged
            victims.append(holding(client, dispatchers, 60) or dispatchers[0])
        if "worker" in fault:
            # a worker with batches in flight (the receiver takes 100 ms per request)
            wait("a third delivered", lambda: len(receiver.received) >= expected // 3, 120, 0.01)
            victims.append(workers[0][0])
        killed_at = time.monotonic()
        for proc in victims:
            proc.kill()
        for proc in victims:
            proc.start()
        publisher.join()
        published_at = time.monotonic()

        def finished() -> bool:
            made = sum(int(client.zcard(keys.subscription_deliveries(s))) for s in subs)
            return made == expected and not client.zcard(keys.RETRY_DUE)

        wait("every delivery", finished, 300, 0.1)
        last = max(r.at for r in receiver.received)
        records = sum(1 for _ in client.scan_iter(keys.delivery("*"), count=1000))
        statuses = {
            text(client.hget(keys.delivery(text(d)), "status") or b"?")
            for s in subs
            for d in client.zrange(keys.subscription_deliveries(s), 0, -1)
        }
        ids = {r.webhook_id for r in receiver.received}
        return {
            "fault": fault,
            "killed": [p.name for p in victims],
            "events": events,
            "kill_to_last_delivery_s": round(last - killed_at, 2),
            "publishing_after_kill_s": round(published_at - killed_at, 2),
            "records": records,
            "records_expected": expected,
            "statuses": sorted(statuses),
            "received": len(receiver.received),
            "distinct_delivery_ids": len(ids),
            "lost": expected - len(ids),
        }
    finally:
        client.close()
        for proc in procs:
            proc.kill()
        receiver.stop()
        redis.kill()


def measure(events: int = 300) -> list[dict[str, Any]]:
    out = []
    for fault in FAULTS:
        with tempfile.TemporaryDirectory(prefix="notify-takeover-") as tmp:
            result = one(fault, events, Path(tmp))
        print(result, flush=True)
        out.append(result)
    return out
