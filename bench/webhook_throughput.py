"""Webhook delivery throughput and publish-to-receipt latency.

Starts a private redis-server, ``notify dispatcher``, ``notify worker --concurrency 2``
and a minimal receiver, all on loopback, then:

1. throughput: publishes EVENTS events (one batch call per 1000) to SUBS webhook
   subscriptions and times until the receiver has every delivery;
2. latency: publishes at RATE events/s for SECONDS to one subscription and reports
   p50/p99 from publish (event id time) to arrival at the receiver.

Both phases print the CPU each process group used (the worker counts its prefork
children) and the time its threads sat runnable waiting for a CPU: on a busy machine a
low figure with a high wait is noise, not the code.

Run: .venv/bin/python bench/webhook_throughput.py [--events 6000] [--subs 3]
     [--format standard|slack|template]  (the subscriptions' webhook format)
     [--profile DIR]  (py-spy records of the worker processes and the dispatcher)
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
from notify.redis.subscriptions import SubscriptionStore
from notify.subscriptions import NewSubscription
from notify.webhooks import new_secret
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """pid and its descendants (the Celery worker's prefork children)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, run-queue wait seconds) of a process tree, all threads; a negative
    pid counts that process alone."""
    cpu = wait = 0.0
    for p in tree(pid) if pid > 0 else [-pid]:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / TICK
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/schedstat") as f:
                    wait += int(f.read().split()[1]) / 1e9
        except OSError:
            continue
    return cpu, wait


class Usage:
    """CPU and run-queue wait of named process groups over a phase."""

    def __init__(self, groups: dict[str, int]) -> None:
        self._groups = groups
        self._start = {name: usage(pid) for name, pid in groups.items()}
        self._t0 = time.monotonic()

    def report(self, units: int, unit: str) -> str:
        took = time.monotonic() - self._t0
        parts = []
        for name, pid in self._groups.items():
            cpu, wait = (b - a for a, b in zip(self._start[name], usage(pid), strict=True))
            parts.append(
                f"  {name:<10} cpu {cpu:6.2f} s ({100 * cpu / took:4.0f} %, "
                f"{1e3 * cpu / max(units, 1):.3f} ms/{unit}), run-queue wait {wait:6.2f} s"
            )
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        return "\n".join([*parts, f"  load average {load}"])


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


TEMPLATE = (
    '{"id": {{ event.id|tojson }}, "text": "{{ event.type }} on {{ event.channel }}",'
    ' "data": {{ event.data|tojson }}}'
)
FORMATS = {
    "standard": {},
    "slack": {"format": "slack"},
    "template": {"format": "template", "template": TEMPLATE},
}


async def main(
    events: int,
    subs: int,
    rate: int,
    seconds: int,
    profile: str | None,
    fmt: str,
    body_format: str = "standard",
) -> None:
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
            sink = {
                "kind": "webhook",
                "url": f"http://127.0.0.1:{recv_port}/s{n}",
                **FORMATS[body_format],
            }
            made.append(
                await store.create(NewSubscription("bench.>", (), sink, None), "bench", limit=100,
                                   secret=new_secret())
            )  # fmt: skip
        dispatcher = spawn([sys.executable, "-m", "notify", "dispatcher"], env, tmp / "d.log")
        worker = spawn([sys.executable, "-m", "notify", "worker", "--concurrency", "2"], env,
                       tmp / "w.log")  # fmt: skip
        procs += [dispatcher, worker]
        groups = {"worker": worker.pid, "  its main": -worker.pid,
                  "dispatcher": dispatcher.pid, "receiver": procs[1].pid,
                  "redis": procs[0].pid}  # fmt: skip
        async with AsyncPublisher(url) as pub:
            # warm up: connections, scripts, worker processes
            await pub.publish_many([{"channel": "bench.w", "type": "t", "data": 0}] * 50)
            await wait_count(redis, 50 * subs, 60)
            base = await delivered(redis)
            spies = py_spy(profile, fmt, groups, env, "throughput") if profile else []
            phase = Usage(groups)
            start = time.monotonic()
            for first in range(0, events, 1000):
                batch = [{"channel": f"bench.{n % 10}", "type": "t", "data": n}
                         for n in range(first, min(events, first + 1000))]  # fmt: skip
                await pub.publish_many(batch)
            await wait_count(redis, base + events * subs, 300)
            took = time.monotonic() - start
            total = events * subs
            print(f"throughput: {total} deliveries in {took:.2f} s = {total / took:.0f}/s "
                  f"({subs} subscriptions, 2 worker processes, format {body_format})")  # fmt: skip
            print(phase.report(total, "delivery"))
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            for s in made[1:]:
                await store.delete(s.id)
            await asyncio.sleep(1.5)
            base = await delivered(redis)
            ids: set[str] = set()
            spies = py_spy(profile, fmt, groups, env, "latency") if profile else []
            phase = Usage(groups)
            for _ in range(rate * seconds):
                ids.add(await pub.publish("bench.lat", "t", None))
                await asyncio.sleep(1 / rate)
            await wait_count(redis, base + len(ids), 60)
            latency_usage = phase.report(len(ids), "delivery")
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
        procs[1].send_signal(signal.SIGUSR1)
        procs[1].wait(10)
        latencies = []
        for line in (tmp / "arrivals").read_text().splitlines():
            at, event_id = line.split(" ")
            if event_id in ids:
                latencies.append(float(at) * 1000 - int(event_id.split("-")[0]))
        latencies.sort()
        p50 = statistics.median(latencies)
        p90, p99 = (latencies[int(len(latencies) * q) - 1] for q in (0.9, 0.99))
        print(f"latency at {rate} events/s: p50 {p50:.1f} ms, p90 {p90:.1f} ms, "
              f"p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms "
              f"({len(latencies)} events)")  # fmt: skip
        print(latency_usage)
    finally:
        await redis.aclose()
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)


def py_spy(
    out: str, fmt: str, groups: dict[str, int], env: dict[str, str], phase: str
) -> list[subprocess.Popen[bytes]]:
    """py-spy records of the worker's processes and the dispatcher over one phase:
    flame graphs, or collapsed stacks (raw) to add up self time."""
    spy = str(Path(sys.executable).with_name("py-spy"))
    Path(out).mkdir(parents=True, exist_ok=True)
    pids = {f"worker-{p}": p for p in tree(groups["worker"])}
    pids["dispatcher"] = groups["dispatcher"]
    spies = []
    for name, pid in pids.items():
        suffix = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}[fmt]
        argv = [spy, "record", "--pid", str(pid), "--rate", "200", "--nonblocking",
                "--format", fmt, "-o", str(Path(out) / f"{phase}-{name}.{suffix}")]  # fmt: skip
        spies.append(
            subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    return spies


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--subs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--profile", metavar="DIR", help="write py-spy profiles here")
    parser.add_argument(
        "--profile-format", default="flamegraph", choices=["flamegraph", "raw", "speedscope"]
    )
    parser.add_argument("--format", default="standard", choices=sorted(FORMATS))
    a = parser.parse_args()
    asyncio.run(main(a.events, a.subs, a.rate, a.seconds, a.profile, a.profile_format, a.format))
