"""Webhook delivery throughput and publish-to-receipt latency.

Starts a private redis-server, ``notify dispatcher``, ``notify worker --concurrency 2``
and a minimal receiver, all on loopback, then:

1. throughput: publishes EVENTS events (one batch call per 1000) to SUBS webhook
   subscriptions and times until the receiver has every delivery;
2. latency: publishes at RATE events/s for SECONDS to one subscription and reports
   p50/p99 from publish (event id time) to arrival at the receiver.

Run: .venv/bin/python bench/webhook_throughput.py [--events 6000] [--subs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

from notify import keys
from notify.publisher import AsyncPublisher
from notify.store import SubscriptionStore
from notify.subscriptions import Draft
from notify.webhooks import new_secret
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


async def delivered(redis: aioredis.Redis) -> int:
    value = await redis.hget(keys.DELIVERY_METRICS, "webhook:delivered")
    return int(value or 0)


async def wait_count(redis: aioredis.Redis, target: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await delivered(redis) >= target:
            return time.monotonic() - start
        await asyncio.sleep(0.01)
    raise SystemExit(f"only {await delivered(redis)} of {target} delivered in {timeout} s")


async def main(events: int, subs: int, rate: int, seconds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    redis_port, recv_port = free_port(), free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")},
        "NOTIFY_REDIS_URL": url,
        "NOTIFY_ALLOW_PRIVATE_TARGETS": "1",
        "NOTIFY_WEBHOOK_TARGET_RATE": "0",
        "NOTIFY_DELIVERY_BATCH_SIZE": os.environ.get("BENCH_BATCH", "50"),
    }
    procs = [
        spawn(["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
              env, tmp / "redis.log"),
        spawn([sys.executable, "bench/webhook_receiver.py", str(recv_port), str(tmp / "arrivals")],
              env, tmp / "receiver.log"),
    ]  # fmt: skip
    await asyncio.sleep(0.5)
    redis = aioredis.Redis.from_url(url)
    store = SubscriptionStore(redis)
    try:
        made = []
        for n in range(subs):
            sink = {"kind": "webhook", "url": f"http://127.0.0.1:{recv_port}/s{n}"}
            made.append(
                await store.create(Draft("bench.>", (), sink, None), "bench", limit=100,
                                   secret=new_secret())
            )  # fmt: skip
        procs.append(spawn([sys.executable, "-m", "notify", "dispatcher"], env, tmp / "d.log"))
        procs.append(
            spawn([sys.executable, "-m", "notify", "worker", "--concurrency", "2"], env,
                  tmp / "w.log")
        )  # fmt: skip
        async with AsyncPublisher(url) as pub:
            # warm up: connections, scripts, worker processes
            await pub.publish_many([{"channel": "bench.w", "type": "t", "data": 0}] * 50)
            await wait_count(redis, 50 * subs, 60)
            base = await delivered(redis)
            start = time.monotonic()
            for first in range(0, events, 1000):
                batch = [{"channel": f"bench.{n % 10}", "type": "t", "data": n}
                         for n in range(first, min(events, first + 1000))]  # fmt: skip
                await pub.publish_many(batch)
            await wait_count(redis, base + events * subs, 300)
            took = time.monotonic() - start
            total = events * subs
            print(f"throughput: {total} deliveries in {took:.2f} s = {total / took:.0f}/s "
                  f"({subs} subscriptions, 2 worker processes)")  # fmt: skip
            for s in made[1:]:
                await store.delete(s.id)
            await asyncio.sleep(1.5)
            base = await delivered(redis)
            ids: set[str] = set()
            for _ in range(rate * seconds):
                ids.add(await pub.publish("bench.lat", "t", None))
                await asyncio.sleep(1 / rate)
            await wait_count(redis, base + len(ids), 60)
        procs[1].send_signal(signal.SIGUSR1)
        procs[1].wait(10)
        latencies = []
        for line in (tmp / "arrivals").read_text().splitlines():
            at, event_id = line.split(" ")
            if event_id in ids:
                latencies.append(float(at) * 1000 - int(event_id.split("-")[0]))
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(f"latency at {rate} events/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
              f"({len(latencies)} events)")  # fmt: skip
    finally:
        await redis.aclose()
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--subs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10)
    a = parser.parse_args()
    asyncio.run(main(a.events, a.subs, a.rate, a.seconds))
