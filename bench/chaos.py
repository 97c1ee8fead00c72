"""The chaos soak of issue 5: faults under load, and what was lost.

Two gateways, a dispatcher and a Celery worker on a Redis with an append-only file.
A publisher sends events on mixed channels through both gateways (a batch that fails
is retried with its Idempotency-Key); stream clients (SSE and WebSocket, in child
processes) follow their channels and fail over with their last id; 3 webhook
subscriptions go to a receiver whose behaviour flips (500, hang, refuse connections)
and 1 email subscription to aiosmtpd. A bounded fault script repeatedly kills with
SIGKILL and restarts a gateway, the dispatcher and the worker, restarts Redis, flips
the receiver and makes some clients stop reading. Then it counts.

    python bench/chaos.py                  # issue 5's load, fsync everysec then always
    python bench/chaos.py --quick          # about a minute per fsync mode
    python bench/chaos.py --fsync always --events 50000 --clients 200
    python bench/chaos.py --takeover       # kill -9 mid-burst: time to the last delivery

Redis restarts: with ``appendfsync everysec`` Redis is stopped with SIGTERM (it fsyncs
the file; a SIGKILL may lose the last second of acknowledged writes, Redis's documented
contract); with ``always`` restarts alternate between SIGTERM and SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from notify.auth import mint  # noqa: E402
from notify.channels import matches  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.procs import Gateway, Proc  # noqa: E402
from tests.support.redis import Fsync, RedisServer  # noqa: E402
from tests.support.smtp_server import SmtpServer  # noqa: E402
from tests.support.streamers import StreamClient, Transport  # noqa: E402

SECRET = "chaos-secret-" + "x" * 32
SLOW_EVERY = 50  # one client in this many is a slow consumer
HOOKS = {"/h-all": "chaos.>", "/h-a": "chaos.a.>", "/h-b": "chaos.b.*"}
MAIL_PATTERN = "chaos.m.*"
MAIL_TO = "chaos@example.com"


def channel_of(n: int) -> str:
    """Mixed channels: 40 under chaos.a (two levels), 40 under chaos.b, 4 mail ones."""
    k = n % 21
    if k == 20:
        return f"chaos.m.{n % 4}"
    return f"chaos.a.{n % 8}.{n % 5}" if k % 2 else f"chaos.b.{n % 40}"


def client_channels(i: int) -> list[str]:
    if i % SLOW_EVERY == 0:
        return ["chaos.>"]
    k = i % 10
    if k == 0:
        return ["chaos.a.>"]
    if k == 1:
        return ["chaos.b.*", "chaos.m.*"]
    return [channel_of(i * 7 + k)] + ([channel_of(i * 13 + 1)] if k % 3 == 0 else [])


# --- the webhook receiver whose behaviour flips ---------------------------------------


class Receiver:
    """Records (webhook-id, first time seen) per path; ``mode`` is ok, 500 or hang;
    ``refuse()`` closes the listening socket for a while."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mode = "ok"
        self.seen: dict[str, dict[str, float]] = defaultdict(dict)
        self.requests = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="error",
            lifespan="off",
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return
            time.sleep(0.02)
        raise RuntimeError("receiver did not start")

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if not message.get("more_body"):
                break
        self.requests += 1
        mode = self.mode
        if mode == "hang":
            await asyncio.sleep(60)
        status = 500 if mode == "500" else 200
        if status == 200:
            hook_id = dict(scope["headers"]).get(b"webhook-id", b"").decode()
            self.seen[scope["path"]].setdefault(hook_id, time.time())
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


# --- the child process that runs stream clients ---------------------------------------


async def run_clients(spec: dict[str, Any]) -> None:
    clients = [
        StreamClient(
            c["name"],
            c["transport"],
            c["gateways"],
            c["channels"],
            spec["token"],
            small_buffer=c["slow"],
        )
        for c in spec["clients"]
    ]
    tasks: list[asyncio.Task[None]] = []
    for start in range(0, len(clients), 50):  # connect in waves
        tasks += [asyncio.create_task(c.run()) for c in clients[start : start + 50]]
        await asyncio.sleep(0.1)
    slow = [c for c, s in zip(clients, spec["clients"], strict=True) if s["slow"]]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    stalls: list[dict[str, float]] = []
    deadline = time.monotonic() + spec["max_seconds"]
    period, length = spec["stall_every"], spec["stall_for"]
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            await asyncio.wait_for(stop.wait(), period)
        except TimeoutError:
            if not spec["stalls"]:
                continue
            began = time.time()
            for c in slow:
                c.stall()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), length)
            for c in slow:
                c.resume()
            stalls.append({"from": began, "to": time.time()})
    for c in slow:  # no more stalls: everyone catches up before the count
        c.resume()
    last = -1
    for _ in range(40):  # until no client has received anything for 3 s (2 minutes at most)
        total = sum(len(c.stats.ids) for c in clients)
        if total == last:
            break
        last = total
        await asyncio.sleep(3)
    for c in clients:
        c.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    body = json.dumps({"clients": [c.stats.to_json() for c in clients], "stalls": stalls})
    await asyncio.to_thread(Path(spec["out"]).write_text, body)


# --- the orchestrator -----------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    fsync: Fsync
    work: Path
    accepted: list[tuple[str, str, float]] = field(default_factory=list)  # id, channel, t
    faults: list[tuple[str, float]] = field(default_factory=list)
    publish_retries: int = 0
    slow_disconnects: int = 0
    notes: list[str] = field(default_factory=list)


class Stack:
    def __init__(self, run: Run, smtp: SmtpServer) -> None:
        self.run = run
        self.redis = RedisServer(run.work / "redis", appendonly=True, appendfsync=run.fsync)
        self.env: dict[str, object] = {
            "NOTIFY_REDIS_URL": "",
            "NOTIFY_JWT_SECRET": SECRET,
            "NOTIFY_ALLOW_PRIVATE_TARGETS": "1",
            "NOTIFY_RETRY_SCHEDULE": "1,2,4,8,15,30,30",
            "NOTIFY_WEBHOOK_TIMEOUT_SECONDS": "5",
            "NOTIFY_DELIVERY_LEASE_SECONDS": "10",
            "NOTIFY_DISPATCH_CLAIM_IDLE_SECONDS": "5",
            "NOTIFY_WEBHOOK_TARGET_RATE": "0",
            "NOTIFY_SMTP_URL": smtp.url,
            "NOTIFY_EMAIL_FROM": "notify@notify.test",
        }
        self.gateways: list[Gateway] = []
        self.dispatcher: Proc | None = None
        self.worker: Proc | None = None

    def start(self) -> None:
        self.redis.start()
        self.env["NOTIFY_REDIS_URL"] = self.redis.url
        for n in range(2):
            gw = Gateway(
                redis_url=self.redis.url,
                jwt_secret=SECRET,
                directory=self.run.work / f"gw{n}",
                env=self.env,
                name=f"gateway{n}",
            )
            self.gateways.append(gw.start())
        self.dispatcher = Proc(
            ["dispatcher"], directory=self.run.work / "disp", env=self.env, name="dispatcher"
        ).start()
        self.worker = Proc(
            ["worker", "--concurrency", str(self.run.args.worker_concurrency)],
            directory=self.run.work / "worker",
            env=self.env,
            name="worker",
        ).start()

    def close(self) -> None:
        for proc in [*self.gateways, self.dispatcher, self.worker]:
            if proc is not None:
                proc.kill()
        self.redis.stop()

    def slow_disconnects(self, gw: Gateway) -> int:
        try:
            text = httpx.get(gw.url("/metrics"), timeout=5, trust_env=False).text
        except httpx.HTTPError:
            return 0
        for line in text.splitlines():
            if line.startswith("notify_slow_consumer_disconnects_total "):
                return int(float(line.split()[1]))
        return 0


async def publish(run: Run, stack: Stack, token: str, stop: asyncio.Event) -> None:
    args = run.args
    interval = args.batch / (args.events / args.duration)
    headers = {"authorization": f"Bearer {token}"}
    pad = "x" * args.payload
    n = 0
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        for b in range(args.events // args.batch):
            if stop.is_set():
                return
            events = [
                {"channel": channel_of(n + i), "type": "chaos.t", "data": {"n": n + i, "pad": pad}}
                for i in range(args.batch)
            ]
            n += args.batch
            key = {**headers, "idempotency-key": f"{run.fsync}-{b}"}
            for attempt in range(600):  # bounded: a minute of 0.1 s waits at most
                gw = stack.gateways[(b + attempt) % len(stack.gateways)]
                try:
                    r = await client.post(
                        gw.url("/v1/events/batch"), json={"events": events}, headers=key
                    )
                except httpx.HTTPError:
                    r = None
                if r is not None and r.status_code == 202:
                    now = time.time()
                    run.accepted += [
                        (i, str(e["channel"]), now)
                        for i, e in zip(r.json()["ids"], events, strict=True)
                    ]
                    break
                run.publish_retries += 1
                await asyncio.sleep(0.1)
            else:
                run.notes.append(f"batch {b} never accepted")
            ahead = started + (b + 1) * interval - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)


async def faults(run: Run, stack: Stack, receiver: Receiver, stop: asyncio.Event) -> None:
    every = run.args.fault_interval
    redis_restarts = 0

    async def pause(seconds: float) -> bool:
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def mark(name: str) -> None:
        run.faults.append((name, time.time()))
        print(f"  {time.strftime('%H:%M:%S')} fault: {name}", flush=True)

    async def kill_gateway(n: int) -> None:
        gw = stack.gateways[n]
        run.slow_disconnects += stack.slow_disconnects(gw)
        mark(f"kill -9 gateway{n}")
        await asyncio.to_thread(gw.restart)

    async def kill_proc(proc: Proc | None) -> None:
        assert proc is not None
        mark(f"kill -9 {proc.name}")
        proc.kill()
        await asyncio.to_thread(proc.start)

    async def restart_redis() -> None:
        nonlocal redis_restarts
        graceful = run.fsync != "always" or redis_restarts % 2 == 1  # always: kill -9 first
        redis_restarts += 1
        mark(f"redis restart ({'SIGTERM' if graceful else 'kill -9'})")
        await asyncio.to_thread(stack.redis.restart, graceful=graceful)

    async def flip(mode: str) -> None:
        mark(f"webhook receiver {mode}")
        if mode == "refuse":
            await asyncio.to_thread(receiver.stop)
        else:
            receiver.mode = mode
        await pause(min(10.0, every))
        if mode == "refuse":
            await asyncio.to_thread(receiver.start)
        receiver.mode = "ok"

    script: list[Callable[[], Awaitable[None]]] = [
        lambda: kill_gateway(0),
        lambda: kill_proc(stack.dispatcher),
        lambda: flip("500"),
        lambda: kill_proc(stack.worker),
        restart_redis,
        lambda: flip("hang"),
        lambda: kill_gateway(1),
        lambda: flip("refuse"),
    ]
    for step in range(10_000):  # bounded; the publisher's end stops it long before
        if await pause(every):
            return
        await script[step % len(script)]()


def id_key(event_id: str) -> tuple[int, int]:
    """Only the verifier orders ids itself (clients treat them as opaque)."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def history(base: str, token: str) -> dict[str, str]:
    """id -> channel of every stored event, via the history API."""
    out: dict[str, str] = {}
    after: str | None = None
    with httpx.Client(base_url=base, trust_env=False, timeout=30) as c:
        for _ in range(100_000):
            params: dict[str, Any] = {"channel": "chaos.>", "limit": 1000}
            if after:
                params["after"] = after
            page = c.get("/v1/events", params=params, headers={"authorization": f"Bearer {token}"})
            body = page.json()
            out.update({e["id"]: e["channel"] for e in body["events"]})
            after = body["next"]
            if not after or not body["events"]:
                break
    return out


def deliveries(base: str, token: str, sub: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(base_url=base, trust_env=False, timeout=30) as c:
        for _ in range(100_000):
            params: dict[str, Any] = {"subscription": sub, "limit": 500}
            if cursor:
                params["cursor"] = cursor
            r = c.get("/v1/deliveries", params=params, headers={"authorization": f"Bearer {token}"})
            out += r.json()["deliveries"]
            cursor = r.json()["next"]
            if cursor is None:
                break
    return out


def catch_up(
    faults: list[tuple[str, float]],
    expected: list[tuple[str, float]],  # (id, accepted at), in accept order
    arrived: dict[str, float],
) -> dict[str, list[float]]:
    """Per fault kind: seconds from the fault until everything accepted before it had
    arrived (one figure per fault occurrence)."""
    prefix_max: list[float] = []
    worst = 0.0
    for event_id, _ in expected:
        worst = max(worst, arrived.get(event_id, float("inf")))
        prefix_max.append(worst)
    times = [t for _, t in expected]
    out: dict[str, list[float]] = defaultdict(list)
    for name, at in faults:
        k = bisect.bisect_right(times, at)
        if k == 0:
            continue
        done = prefix_max[k - 1]
        if done != float("inf"):
            out[name.split(" (")[0]].append(max(0.0, done - at))
    return out


def subscribe_sinks(stack: Stack, receiver: Receiver, admin: str) -> dict[str, str]:
    """Subscription id -> receiver path (or "email")."""
    subs: dict[str, str] = {}
    with httpx.Client(base_url=stack.gateways[0].base_url, trust_env=False, timeout=10) as c:
        h = {"authorization": f"Bearer {admin}"}
        for path, pattern in HOOKS.items():
            body = {"channel": pattern, "sink": {"kind": "webhook", "url": receiver.url(path)}}
            subs[c.post("/v1/subscriptions", json=body, headers=h).json()["id"]] = path
        body = {"channel": MAIL_PATTERN, "sink": {"kind": "email", "to": MAIL_TO}}
        subs[c.post("/v1/subscriptions", json=body, headers=h).json()["id"]] = "email"
    return subs


def spawn_clients(
    run: Run, stack: Stack, admin: str, children: list[subprocess.Popen[bytes]]
) -> list[Path]:
    """Stream clients in child processes (one core of Python each, at most 4)."""
    args = run.args
    addresses = [f"127.0.0.1:{gw.port}" for gw in stack.gateways]
    specs = []
    for i in range(args.clients):
        transport: Transport = "ws" if i % 3 == 2 else "sse"
        specs.append(
            {
                "name": f"c{i}",
                "transport": transport,
                "gateways": addresses[i % 2 :] + addresses[: i % 2],
                "channels": client_channels(i),
                "slow": i % SLOW_EVERY == 0,
            }
        )
    procs_n = max(1, min(4, args.clients // 200 + 1))
    outs = []
    for p in range(procs_n):
        out = run.work / f"clients{p}.json"
        outs.append(out)
        spec = {
            "token": admin,
            "clients": specs[p::procs_n],
            "out": str(out),
            "max_seconds": args.duration + args.drain + 120,
            "stall_every": max(5.0, args.fault_interval * 2),
            "stall_for": args.stall,
            "stalls": args.stall > 0,
        }
        spec_path = run.work / f"clients{p}.spec.json"
        spec_path.write_text(json.dumps(spec))
        children.append(
            subprocess.Popen(
                [sys.executable, __file__, "clients", str(spec_path)],
                stdin=subprocess.PIPE,
                cwd=ROOT,
            )
        )
    return outs


def collect_clients(
    children: list[subprocess.Popen[bytes]], outs: list[Path]
) -> tuple[list[dict[str, Any]], list[dict[str, float]]]:
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"stop\n")
        child.stdin.flush()
    for child in children:
        child.wait(120)
    clients: list[dict[str, Any]] = []
    stalls: list[dict[str, float]] = []
    for out in outs:
        body = json.loads(out.read_text())
        clients += body["clients"]
        stalls += body["stalls"]
    return clients, stalls


async def soak(run: Run) -> dict[str, Any]:
    args = run.args
    smtp = SmtpServer().start()
    receiver = Receiver()
    receiver.start()
    stack = Stack(run, smtp)
    await asyncio.to_thread(stack.start)
    admin = mint(SECRET, "chaos", publish=["chaos.>"], subscribe=["chaos.>"])
    children: list[subprocess.Popen[bytes]] = []
    try:
        subs = await asyncio.to_thread(subscribe_sinks, stack, receiver, admin)
        outs = await asyncio.to_thread(spawn_clients, run, stack, admin, children)
        await asyncio.sleep(3 + args.clients / 200)

        stop = asyncio.Event()
        started = time.time()
        faulting = asyncio.create_task(faults(run, stack, receiver, stop))
        await publish(run, stack, admin, stop)
        stop.set()
        await faulting
        published_s = time.time() - started
        print(f"  published {len(run.accepted)} in {published_s:.0f} s; draining", flush=True)

        stored = await asyncio.to_thread(history, stack.gateways[1].base_url, admin)
        # sinks settle: every record delivered (bounded wait)
        sink_rows: dict[str, list[dict[str, Any]]] = {}
        deadline = time.monotonic() + args.drain
        while True:
            sink_rows = {
                s: await asyncio.to_thread(deliveries, stack.gateways[1].base_url, admin, s)
                for s in subs
            }
            pending = sum(
                1 for rows in sink_rows.values() for d in rows if d["status"] != "delivered"
            )
            if not pending or time.monotonic() > deadline:
                break
            print(f"  {pending} deliveries not yet delivered", flush=True)
            await asyncio.sleep(5)
        run.slow_disconnects += sum(stack.slow_disconnects(gw) for gw in stack.gateways)
        clients, stalls = await asyncio.to_thread(collect_clients, children, outs)
        return report(run, stored, clients, stalls, subs, sink_rows, receiver, smtp, published_s)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
        stack.close()
        receiver.stop()
        smtp.stop()


def report(
    run: Run,
    stored: dict[str, str],
    clients: list[dict[str, Any]],
    stalls: list[dict[str, float]],
    subs: dict[str, str],
    sink_rows: dict[str, list[dict[str, Any]]],
    receiver: Receiver,
    smtp: SmtpServer,
    published_s: float,
) -> dict[str, Any]:
    accepted_ids = {i for i, _, _ in run.accepted}
    faults = run.faults + [("slow consumers stall", s["from"]) for s in stalls]
    result: dict[str, Any] = {
        "fsync": run.fsync,
        "events_accepted": len(run.accepted),
        "events_stored": len(stored),
        "accepted_not_stored": len(accepted_ids - set(stored)),
        "publish_seconds": round(published_s, 1),
        "publish_retries": run.publish_retries,
        "faults": [name for name, _ in run.faults],
        "notes": run.notes,
    }
    # clients
    lost = dups = received = order = gaps = 0
    catch: dict[str, list[float]] = defaultdict(list)
    worst_clients = []
    for c in clients:
        pats = c["channels"]
        expected = [(i, t) for i, ch, t in run.accepted if any(matches(p, ch) for p in pats)]
        ids = c["ids"]
        got = set(ids)
        missing = [i for i, _ in expected if i not in got]
        lost += len(missing)
        dups += len(ids) - len(got)
        received += len(ids)
        gaps += len(c["gaps"])
        by_channel: dict[str, tuple[int, int]] = {}
        for i in ids:
            ch, key = stored.get(i, ""), id_key(i)
            if ch in by_channel and by_channel[ch] >= key:
                order += 1
            by_channel[ch] = key
        if missing:
            worst_clients.append(
                {"client": c["name"], "missing": len(missing), "first": missing[:3]}
            )
        arrived: dict[str, float] = {}
        for i, t in zip(ids, c["times"], strict=True):
            arrived.setdefault(i, t)
        slow = int(c["name"][1:]) % SLOW_EVERY == 0
        # a slow client's own stalls would swamp the other faults' figures, and the
        # others never stall: each kind of client is measured on its own faults
        mine = faults[len(run.faults) :] if slow else run.faults
        for kind, values in catch_up(mine, expected, arrived).items():
            catch[kind] += values
    per_client = [len(c["ids"]) for c in clients]
    result["clients"] = {
        "count": len(clients),
        "sse": sum(1 for c in clients if c["transport"] == "sse"),
        "ws": sum(1 for c in clients if c["transport"] == "ws"),
        "events_received": received,
        "per_client_min": min(per_client, default=0),
        "per_client_median": sorted(per_client)[len(per_client) // 2] if per_client else 0,
        "per_client_max": max(per_client, default=0),
        "lost": lost,
        "duplicates": dups,
        "order_violations": order,
        "gap_frames": gaps,
        "reconnects": sum(c["drops"] for c in clients),
        "slow_client_drops_while_stalled": sum(c["stalled_drops"] for c in clients),
        "worst": sorted(worst_clients, key=lambda w: -w["missing"])[:5],
    }
    result["slow_consumer_disconnects_metric"] = run.slow_disconnects
    result["catch_up_s"] = {
        kind: {"n": len(v), "max": round(max(v), 2), "p99": round(percentile(v, 0.99), 2)}
        for kind, v in sorted(catch.items())
    }
    # sinks
    sinks: dict[str, Any] = {}
    for sub, path in subs.items():
        pattern = HOOKS.get(path, MAIL_PATTERN)
        want = {i for i, ch in stored.items() if matches(pattern, ch)}
        rows = sink_rows.get(sub, [])
        by_event: dict[str, int] = defaultdict(int)
        for d in rows:
            by_event[d["event_id"]] += 1
        delivered = [d for d in rows if d["status"] == "delivered"]
        entry: dict[str, Any] = {
            "pattern": pattern,
            "expected": len(want),
            "records": len(rows),
            "lost_records": len(want - set(by_event)),
            "double_records": sum(n - 1 for n in by_event.values() if n > 1),
            "delivered": len(delivered),
            "not_delivered": len(rows) - len(delivered),
            "attempts_total": sum(len(d.get("attempts", [])) for d in rows),
        }
        if path == "email":
            mailed: dict[str, set[str]] = defaultdict(set)
            for mail in smtp.accepted(MAIL_TO):
                mailed[mail.header("X-Notify-Event")].add(mail.header("Message-ID"))
            entry["received_events"] = len(mailed)
            entry["missing_at_receiver"] = len({d["event_id"] for d in delivered} - set(mailed))
            entry["mails"] = len(smtp.accepted(MAIL_TO))
        else:
            seen = receiver.seen[path]
            entry["missing_at_receiver"] = len({d["id"] for d in delivered} - set(seen))
            accepted_at = {i: t for i, _, t in run.accepted}
            arrived = {d["event_id"]: seen[d["id"]] for d in delivered if d["id"] in seen}
            expected = sorted(
                ((i, accepted_at[i]) for i in want if i in accepted_at), key=lambda x: x[1]
            )
            entry["catch_up_s"] = {
                kind: {"max": round(max(v), 2), "p99": round(percentile(v, 0.99), 2)}
                for kind, v in sorted(catch_up(run.faults, expected, arrived).items())
            }
        sinks[path] = entry
    result["sinks"] = sinks
    return result


def machine() -> dict[str, Any]:
    def redis_version() -> str:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
        return out.stdout.strip()

    return {
        "cpus": os.cpu_count(),
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        ),
        "python": platform.python_version(),
        "redis": redis_version(),
        "load_before": Path("/proc/loadavg").read_text().split()[:3],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--duration", type=float, default=300.0, help="seconds of publishing")
    p.add_argument("--batch", type=int, default=50, help="events per publish request")
    p.add_argument("--clients", type=int, default=500)
    p.add_argument("--payload", type=int, default=512, help="padding bytes per event")
    p.add_argument("--fault-interval", type=float, default=15.0)
    p.add_argument("--stall", type=float, default=30.0, help="slow consumers stop reading (s)")
    p.add_argument("--drain", type=float, default=300.0, help="longest wait for sinks (s)")
    p.add_argument("--worker-concurrency", type=int, default=4)
    p.add_argument("--fsync", choices=["everysec", "always", "both"], default="both")
    p.add_argument("--quick", action="store_true", help="about a minute per fsync mode")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument(
        "--takeover",
        action="store_true",
        help="instead of the soak: kill -9 mid-burst, seconds to the last delivery per fault",
    )
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "chaos.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.events, args.duration, args.clients = 6000, 40.0, 100
        args.fault_interval, args.stall, args.drain = 4.0, 12.0, 90.0
        args.payload = 4096
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["clients"]:
        spec = json.loads(Path(argv[1]).read_text())
        asyncio.run(run_clients(spec))
        return
    args = parse_args(argv)
    random.seed(args.seed)
    if args.takeover:
        from bench.takeover import measure

        events = 300 if args.events == 100_000 else args.events
        taken = {"machine": machine(), "takeover": measure(events)}
        out = Path(args.out).with_name("takeover.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(taken, indent=2))
        print(f"written to {out}")
        return
    modes: list[Fsync] = ["everysec", "always"] if args.fsync == "both" else [args.fsync]
    results: dict[str, Any] = {"machine": machine(), "load": vars(args), "runs": []}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix="notify-chaos-") as tmp:
            print(f"== appendfsync {mode}", flush=True)
            run = Run(args, mode, Path(tmp))
            outcome = asyncio.run(soak(run))
            results["runs"].append(outcome)
            print(json.dumps(outcome, indent=2), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
