"""Email and alert delivery throughput.

Starts a private redis-server, ``notify dispatcher``, ``notify worker --concurrency 2``
(two worker processes), a counting aiosmtpd server in a thread and, when installed, a
Prometheus Alertmanager, all on loopback, then:

1. emails/s: publishes EVENTS events to one email subscription and times until the
   SMTP server has accepted every message;
2. alerts/s: publishes ALERTS events (100 distinct alerts) to one monitoring
   subscription and times until every one is delivered to Alertmanager.

Run: PYTHONPATH=. .venv/bin/python bench/email_throughput.py [--events 3000] [--alerts 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiosmtpd.controller import Controller

from notify import keys
from notify.publisher import AsyncPublisher
from notify.redis.subscriptions import SubscriptionStore
from notify.subscriptions import NewSubscription
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
        return "250 OK"


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


async def delivered(redis: aioredis.Redis, kind: str) -> int:
    value = await redis.hget(keys.DELIVERY_METRICS, f"{kind}:delivered")
    return int(value or 0)


async def wait_count(redis: aioredis.Redis, kind: str, target: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await delivered(redis, kind) >= target:
            return time.monotonic() - start
        await asyncio.sleep(0.01)
    raise SystemExit(f"only {await delivered(redis, kind)} of {target} {kind} in {timeout} s")


async def burst(pub: AsyncPublisher, prefix: str, count: int, distinct: int) -> None:
    for first in range(0, count, 1000):
        await pub.publish_many(
            [{"channel": f"{prefix}.c{n % distinct}", "type": "bench.event", "data": {"n": n}}
             for n in range(first, min(count, first + 1000))]
        )  # fmt: skip


def have_alertmanager() -> bool:
    return bool(shutil.which("prometheus-alertmanager")) or os.access(
        "/usr/bin/prometheus-alertmanager", os.X_OK
    )


def start_alertmanager(tmp: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
    port = free_port()
    config = tmp / "am.yml"
    config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    proc = spawn(
        [binary, f"--config.file={config}", f"--storage.path={tmp / 'am'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
         "--log.level=warn"],
        env, tmp / "am.log",
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


async def main(events: int, alerts: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    redis_port, smtp_port = free_port(), free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")},
        "NOTIFY_REDIS_URL": url,
        "NOTIFY_JWT_SECRET": "bench-secret-" + "x" * 32,
        "NOTIFY_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}?starttls=false",
        "NOTIFY_EMAIL_FROM": "bench@notify.test",
        "NOTIFY_ALLOW_PRIVATE_TARGETS": "1",
        "NOTIFY_WEBHOOK_TARGET_RATE": "0",
    }
    counter = Counter()
    smtp = Controller(counter, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    procs = [
        spawn(["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
              env, tmp / "redis.log"),
    ]  # fmt: skip
    am_url = None
    if alerts and have_alertmanager():
        am, am_url = start_alertmanager(tmp, env)
        procs.append(am)
    await asyncio.sleep(1.0)
    redis = aioredis.Redis.from_url(url)
    store = SubscriptionStore(redis)
    try:
        sink: dict[str, Any] = {"kind": "email", "to": "bench@example.com", "digest_seconds": 0}
        await store.create(
            NewSubscription("mail.>", (), sink, None), "bench", limit=100, secret=None
        )
        if am_url:
            sink = {"kind": "monitoring", "url": am_url}
            await store.create(
                NewSubscription("alert.>", (), sink, None), "bench", limit=100, secret=None
            )
        procs.append(spawn([sys.executable, "-m", "notify", "dispatcher"], env, tmp / "d.log"))
        procs.append(
            spawn([sys.executable, "-m", "notify", "worker", "--concurrency", "2"], env,
                  tmp / "w.log")
        )  # fmt: skip
        async with AsyncPublisher(url) as pub:
            await burst(pub, "mail", 50, 10)  # warm up
            await wait_count(redis, "email", 50, 60)
            start = time.monotonic()
            await burst(pub, "mail", events, 10)
            await wait_count(redis, "email", 50 + events, 300)
            took = time.monotonic() - start
            print(f"email: {events} messages in {took:.2f} s = {events / took:.0f}/s "
                  f"(2 worker processes, SMTP server received {counter.count})")  # fmt: skip
            if am_url:
                await burst(pub, "alert", 50, 100)
                await wait_count(redis, "monitoring", 50, 60)
                start = time.monotonic()
                await burst(pub, "alert", alerts, 100)
                await wait_count(redis, "monitoring", 50 + alerts, 300)
                took = time.monotonic() - start
                print(f"alerts: {alerts} alerts in {took:.2f} s = {alerts / took:.0f}/s "
                      "(2 worker processes, 100 distinct alerts)")  # fmt: skip
            else:
                print("alerts: skipped (prometheus-alertmanager not installed)")
    finally:
        await redis.aclose()
        smtp.stop()
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--alerts", type=int, default=3000)
    a = parser.parse_args()
    asyncio.run(main(a.events, a.alerts))
