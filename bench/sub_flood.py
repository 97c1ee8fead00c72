"""Subscription flood against one gateway: one user creating tens of thousands of
subscriptions gets the per-user limit and a clear error, and the others carry on.

A fresh redis-server and one ``notify serve`` (``NOTIFY_MAX_SUBSCRIPTIONS_PER_USER``,
1,000 unless ``--limit``). "bob" holds an SSE stream on ``b.x``, publishes one event
there every 50 ms by POST /v1/events, and creates (then deletes) a ``web`` subscription
every 500 ms. The same measurement twice:

    a  baseline: bob alone for ``--phase`` seconds
    b  bob while "mallory" sends ``--flood`` POST /v1/subscriptions (20,000) on
       ``--concurrency`` keep-alive connections (64), each as soon as the last answered;
       the phase lasts as long as the flood

For mallory: the answers by status (exactly ``limit`` 201s and 409s for the rest is
right), the distinct 409 details, requests/s, her answers' latency, and the
subscriptions GET /v1/subscriptions lists for her afterwards. For bob, in each phase:
publish-to-receive latency (POST sent to the event on his stream) p50/p99/max, POST
latency, events received of those published, subscription answers. For the gateway: CPU
and RSS per phase; for Redis, ``used_memory`` before and after.

    .venv/bin/python bench/sub_flood.py              # 20,000 requests, about 30 s
    .venv/bin/python bench/sub_flood.py --quick      # a short check that it works
    .venv/bin/python bench/sub_flood.py --flood 50000 --concurrency 256 --limit 5000

The gateway runs alone on CPU 0; Redis and all the load (this process and the flood)
on CPU 1. ``flood`` as the first argument runs mallory alone (this script starts it so):
it prints ``READY {...}``, starts when a line arrives on its standard input, and prints
``RESULT {...}`` when every request has been answered. The script exits 1 when a count
is wrong: mallory's answers, her listed subscriptions, or anything bob lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from procs import (
    SECRET,
    Lines,
    Server,
    cpu_seconds,
    emit,
    load_side,
    ms,
    notify_gateway,
    percentile,
    redis_server,
    rss_kib,
    run_loop,
    spawn_load,
    stop,
)

Result = dict[str, Any]
HOST = "127.0.0.1"
FLOOD = 20_000
CONCURRENCY = 64
LIMIT = 1000
PHASE_S = 10.0
PUBLISH_EVERY_S = 0.05
SUBSCRIBE_EVERY_S = 0.5
REQUEST_TIMEOUT_S = 30.0
DRAIN_S = 5.0
"""How long bob's stream may take, after the load stops, to bring the last events."""
BOB_CHANNEL = "b.x"

now = time.monotonic


def mint(subject: str, publish: list[str], subscribe: list[str]) -> str:
    from notify.auth import mint as mint_

    return mint_(SECRET, subject, publish=publish, subscribe=subscribe)


def counts(values: list[int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items()))


# --- the flood (a child process) ------------------------------------------------------


class Http:
    """One keep-alive HTTP/1.1 connection, one request at a time: just enough of a
    client to send POSTs as fast as the server answers, at little CPU."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, path: str, head: bytes, body: bytes) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
            self.connects += 1
        reader = self.reader
        request = f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(request.encode() + head + b"\r\n" + body)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip().lower()
        if "content-length" in fields:
            data = await reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding") == "chunked":
            data = b""
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                data += (await reader.readexactly(size + 2))[:-2]
            await reader.readuntil(b"\r\n")
        else:
            data = await reader.read()
            fields["connection"] = "close"
        if fields.get("connection") == "close":
            self.close()
        return status, data


@dataclass
class Flood:
    statuses: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    details: dict[str, int] = field(default_factory=dict)
    """409 detail -> how many."""
    others: dict[str, str] = field(default_factory=dict)
    """Any other status (0: a transport error) -> the first answer or error seen."""
    first_sent: float = 0.0
    last_answer: float = 0.0


async def flood_run(args: argparse.Namespace) -> Result:
    loop = asyncio.get_running_loop()
    head = f"Authorization: Bearer {mint('mallory', [], ['m.>'])}\r\n"
    head += "Content-Type: application/json\r\n"
    emit("READY", {"pid": os.getpid()})
    go = await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), args.wait)
    if not go:
        return {"error": "standard input closed before the start"}
    flood = Flood()
    taken = iter(range(args.flood))
    conns = [Http(args.port) for _ in range(args.concurrency)]

    async def worker(conn: Http) -> None:
        for n in taken:  # one shared iterator: every request is sent once, by one worker
            body = json.dumps({"channel": f"m.{n}", "sink": {"kind": "web"}}).encode()
            sent = now()
            flood.first_sent = flood.first_sent or sent
            try:
                status, data = await asyncio.wait_for(
                    conn.post("/v1/subscriptions", head.encode(), body), REQUEST_TIMEOUT_S
                )
            except (OSError, EOFError, TimeoutError, ValueError, IndexError) as exc:
                conn.close()
                status, data = 0, f"{type(exc).__name__}: {exc}".encode()
            flood.last_answer = now()
            flood.latencies.append(flood.last_answer - sent)
            flood.statuses.append(status)
            if status == 409:
                try:
                    detail = str(json.loads(data)["detail"])
                except (ValueError, KeyError, TypeError):
                    detail = "(no detail) " + data[:200].decode(errors="replace")
                flood.details[detail] = flood.details.get(detail, 0) + 1
            elif status != 201:
                flood.others.setdefault(str(status), data[:300].decode(errors="replace"))

    cpu0 = time.process_time()
    await asyncio.gather(*(worker(c) for c in conns))
    for conn in conns:
        conn.close()
    wall = max(flood.last_answer - flood.first_sent, 1e-9)
    lat = flood.latencies
    return {
        "requests": len(flood.statuses),
        "statuses": counts(flood.statuses),
        "details_409": flood.details,
        "other_answers": flood.others,
        "duration_s": round(wall, 3),
        "requests_per_s": round(len(flood.statuses) / wall, 1),
        "p50_ms": ms(percentile(lat, 0.5)),
        "p99_ms": ms(percentile(lat, 0.99)),
        "max_ms": ms(max(lat)) if lat else None,
        "connections_opened": sum(c.connects for c in conns),
        "flood_cpu_pct": round(100 * (time.process_time() - cpu0) / wall, 1),
        "started_at": flood.first_sent,
        "ended_at": flood.last_answer,
    }


def flood_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="sub_flood.py flood")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--flood", type=int, required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--wait", type=float, default=600, help="longest wait for the start")
    args = p.parse_args(argv)
    emit("RESULT", run_loop(flood_run(args)))


# --- bob and the measuring side -------------------------------------------------------


@dataclass
class Publish:
    n: int
    sent: float
    took: float = 0.0
    status: int = -1
    """-1 until answered; 0 for a transport error."""
    event_id: str = ""


@dataclass
class Creation:
    sent: float
    took: float = 0.0
    status: int = -1
    deleted: int = -1


@dataclass
class Bob:
    """Another user's ordinary traffic, all timed: a stream, publishes, subscriptions."""

    port: int
    token: str = field(default_factory=lambda: mint("bob", ["b.>"], ["b.>"]))
    publishes: list[Publish] = field(default_factory=list)
    received: dict[int, tuple[float, str]] = field(default_factory=dict)
    """n -> (received at, the frame's id)"""
    duplicates: int = 0
    creations: list[Creation] = field(default_factory=list)
    stream_status: int = 0
    stream_ended: bool = False
    halt: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://{HOST}:{self.port}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=REQUEST_TIMEOUT_S,
            trust_env=False,
        )

    async def stream(self, ready: asyncio.Event) -> None:
        params = {"channel": BOB_CHANNEL, "token": self.token}
        async with (
            httpx.AsyncClient(base_url=f"http://{HOST}:{self.port}", trust_env=False) as c,
            c.stream("GET", "/v1/stream", params=params, timeout=None) as r,
        ):
            self.stream_status = r.status_code
            ready.set()
            if r.status_code != 200:
                return
            frame_id = ""
            async for line in r.aiter_lines():
                if line.startswith("id:"):
                    frame_id = line[3:].strip()
                elif line.startswith("data:"):
                    at = now()
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        n = int(json.loads(line[5:])["data"]["n"])
                        if n in self.received:
                            self.duplicates += 1
                        else:
                            self.received[n] = (at, frame_id)
                            self.arrived.set()
                elif not line:
                    frame_id = ""
        self.stream_ended = True

    async def drain(self, timeout: float) -> None:
        """Wait, up to ``timeout``, until every accepted event has come on the stream."""
        deadline = now() + timeout
        while (left := deadline - now()) > 0 and any(
            p.status == 202 and p.n not in self.received for p in self.publishes
        ):
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)

    async def publish(self, client: httpx.AsyncClient, n: int) -> None:
        body = {"channel": BOB_CHANNEL, "type": "bench", "data": {"n": n}}
        rec = Publish(n, now())
        self.publishes.append(rec)
        try:
            r = await client.post("/v1/events", json=body)
            rec.status = r.status_code
            if r.status_code == 202:
                rec.event_id = r.json()["id"]
        except httpx.HTTPError:
            rec.status = 0
        rec.took = now() - rec.sent

    async def subscribe(self, client: httpx.AsyncClient, n: int) -> None:
        """Create a subscription, then delete it, so that bob stays far from any limit."""
        rec = Creation(now())
        self.creations.append(rec)
        body = {"channel": f"b.s{n}", "sink": {"kind": "web"}}
        try:
            r = await client.post("/v1/subscriptions", json=body)
            rec.took, rec.status = now() - rec.sent, r.status_code
            if r.status_code == 201:
                gone = await client.delete(f"/v1/subscriptions/{r.json()['id']}")
                rec.deleted = gone.status_code
        except httpx.HTTPError:
            rec.status = rec.status if rec.status > 0 else 0
            rec.deleted = 0

    async def every(
        self, seconds: float, action: Callable[[int], Coroutine[Any, Any, None]]
    ) -> None:
        """``action(n)`` at start + n * seconds until halted, each in its own task, so
        that a slow answer does not hold back the next one."""
        start, n = now(), 0
        while not self.halt.is_set():
            wait = start + n * seconds - now()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.halt.wait(), wait)
                continue
            task = asyncio.create_task(action(n))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            n += 1

    def between(self, start: float, end: float) -> Result:
        pubs = [p for p in self.publishes if start <= p.sent < end]
        accepted = [p for p in pubs if p.status == 202]
        got = [p for p in accepted if p.n in self.received]
        e2e = [self.received[p.n][0] - p.sent for p in got]
        posts = [p.took for p in accepted]
        subs = [c for c in self.creations if start <= c.sent < end]
        created = [c.took for c in subs if c.status == 201]
        return {
            "window_s": round(end - start, 2),
            "published": len(pubs),
            "post_statuses": counts([p.status for p in pubs]),
            "received": len(got),
            "lost": len(accepted) - len(got),
            "wrong_id": sum(self.received[p.n][1] != p.event_id for p in got),
            "p50_ms": ms(percentile(e2e, 0.5)),
            "p99_ms": ms(percentile(e2e, 0.99)),
            "max_ms": ms(max(e2e)) if e2e else None,
            "post_p50_ms": ms(percentile(posts, 0.5)),
            "post_p99_ms": ms(percentile(posts, 0.99)),
            "post_max_ms": ms(max(posts)) if posts else None,
            "subscribe_statuses": counts([c.status for c in subs]),
            "unsubscribe_statuses": counts([c.deleted for c in subs if c.status == 201]),
            "subscribe_p50_ms": ms(percentile(created, 0.5)),
            "subscribe_max_ms": ms(max(created)) if created else None,
        }


class Sampler:
    """The gateway's CPU seconds and RSS, twice a second."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float, int]] = []

    def sample(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.samples.append((now(), cpu_seconds(self.pid), rss_kib(self.pid)))

    async def run(self, halt: asyncio.Event) -> None:
        while not halt.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(halt.wait(), 0.5)

    def between(self, start: float, end: float, cpu: tuple[float, float]) -> Result:
        rss = [r for t, _, r in self.samples if start <= t <= end]
        return {
            "server_cpu_pct": round(100 * (cpu[1] - cpu[0]) / (end - start), 1),
            "server_rss_max_mib": round(max(rss) / 1024, 1) if rss else None,
        }


async def drive(
    server: Server, args: argparse.Namespace, flood: subprocess.Popen[str], lines: Lines
) -> Result:
    """Phase a, then phase b around the flood, then what mallory holds."""
    bob, sampler = Bob(server.port), Sampler(server.pid)
    res: Result = {}
    ready, sampling = asyncio.Event(), asyncio.Event()
    streaming = asyncio.create_task(bob.stream(ready))
    sampler_task = asyncio.create_task(sampler.run(sampling))
    await asyncio.wait_for(ready.wait(), 30)
    if bob.stream_status != 200:
        raise RuntimeError(f"bob's stream answered {bob.stream_status}")
    await asyncio.sleep(0.5)  # the stream's subscription is live before the first event
    async with bob.client() as client:
        load = [
            asyncio.create_task(bob.every(PUBLISH_EVERY_S, lambda n: bob.publish(client, n))),
            asyncio.create_task(bob.every(SUBSCRIBE_EVERY_S, lambda n: bob.subscribe(client, n))),
        ]
        print(f"== a baseline: bob alone, {args.phase:g} s ...", flush=True)
        a0, cpu_a0 = now(), cpu_seconds(server.pid)
        await asyncio.sleep(args.phase)
        b0 = a1 = now()
        cpu_b0 = cpu_a1 = cpu_seconds(server.pid)
        print(f"== b flood: {args.flood:,} creations at concurrency {args.concurrency} ...")
        assert flood.stdin is not None
        flood.stdin.write("go\n")
        flood.stdin.flush()
        bound = args.flood * REQUEST_TIMEOUT_S / args.concurrency + 120
        res["mallory"] = json.loads(await asyncio.to_thread(lines.expect, "RESULT", bound))
        b1, cpu_b1 = now(), cpu_seconds(server.pid)
        bob.halt.set()
        await asyncio.gather(*load)
        pending = set(bob.tasks)
        if pending:
            await asyncio.wait(pending, timeout=REQUEST_TIMEOUT_S + 5)
        unfinished = [t for t in pending if not t.done()]
        for task in unfinished:
            task.cancel()
        await bob.drain(DRAIN_S)
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streaming
        sampling.set()
        await sampler_task
        res["a"] = bob.between(a0, a1) | sampler.between(a0, a1, (cpu_a0, cpu_a1))
        res["b"] = bob.between(b0, b1) | sampler.between(b0, b1, (cpu_b0, cpu_b1))
        res["bob"] = bob.between(a0, b1) | {
            "duplicates": bob.duplicates,
            "stream_ended_early": bob.stream_ended,
            "unfinished": len(unfinished),
        }
        mallory = {"Authorization": f"Bearer {mint('mallory', [], ['m.>'])}"}
        listed_at = now()
        r = await client.get("/v1/subscriptions", headers=mallory)
        res["mallory"]["list_status"] = r.status_code
        res["mallory"]["list_ms"] = ms(now() - listed_at)
        body = r.json() if r.status_code == 200 else {}
        res["mallory"]["listed"] = len(body.get("subscriptions", []))
    return res


def used_memory(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        info: dict[str, Any] = client.info("memory")
        return int(info["used_memory"])
    finally:
        client.close()


def spawn_flood(server: Server, args: argparse.Namespace) -> tuple[subprocess.Popen[str], Lines]:
    argv = ["flood", "--port", str(server.port)]
    argv += ["--flood", str(args.flood), "--concurrency", str(args.concurrency)]
    return spawn_load(Path(__file__).name, argv, stdin=True)


def measure(args: argparse.Namespace) -> Result:
    res: Result = {"settings": {k: v for k, v in vars(args).items() if k != "quick"}}
    with (
        tempfile.TemporaryDirectory(prefix="notify-sub-flood-") as tmp,
        redis_server(Path(tmp)) as url,
        notify_gateway(url, Path(tmp), max_subscriptions_per_user=str(args.limit)) as server,
    ):
        flood, lines = spawn_flood(server, args)  # started now: its start-up is not measured
        try:
            json.loads(lines.expect("READY", 60))
            before = used_memory(url)
            res |= asyncio.run(drive(server, args, flood, lines))
            after = used_memory(url)
        finally:
            stop(flood)
        res["redis_used_memory_before_mib"] = round(before / 2**20, 2)
        res["redis_used_memory_after_mib"] = round(after / 2**20, 2)
        held = res["mallory"].get("listed") or 0
        res["redis_bytes_per_held_subscription"] = round((after - before) / held) if held else None
        res["server_rss_end_mib"] = round(rss_kib(server.pid) / 1024, 1)
    return res


def verdict(res: Result, args: argparse.Namespace) -> list[str]:
    """What is wrong; nothing when every count is exactly right."""
    wrong: list[str] = []
    mallory, bob = res["mallory"], res["bob"]
    allowed = min(args.limit, args.flood)
    want = {"201": allowed, "409": args.flood - allowed}
    want = {k: v for k, v in want.items() if v}
    if mallory["statuses"] != want:
        wrong.append(f"mallory's answers {mallory['statuses']}, expected {want}")
    if five := sum(v for k, v in mallory["statuses"].items() if k.startswith("5")):
        wrong.append(f"{five} answers 5xx")
    details = mallory["details_409"]
    if args.flood > allowed and (len(details) != 1 or str(args.limit) not in next(iter(details))):
        wrong.append(f"409 details {list(details)}: expected one, naming {args.limit}")
    if mallory.get("listed") != allowed:
        wrong.append(f"mallory holds {mallory.get('listed')} subscriptions, expected {allowed}")
    if set(bob["post_statuses"]) != {"202"}:
        wrong.append(f"bob's publishes answered {bob['post_statuses']}")
    if bob["lost"] or bob["wrong_id"] or bob["duplicates"] or bob["stream_ended_early"]:
        wrong.append(
            f"bob received {bob['received']} of {bob['published']} events "
            f"({bob['lost']} lost, {bob['wrong_id']} with another id, "
            f"{bob['duplicates']} twice, stream ended early: {bob['stream_ended_early']})"
        )
    if set(bob["subscribe_statuses"]) != {"201"} or set(bob["unsubscribe_statuses"]) != {"204"}:
        wrong.append(
            f"bob's subscriptions answered {bob['subscribe_statuses']}, "
            f"deletions {bob['unsubscribe_statuses']}"
        )
    if bob["unfinished"]:
        wrong.append(f"{bob['unfinished']} of bob's requests never finished")
    return wrong


def table(res: Result) -> list[str]:
    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, dict):
            return " ".join(f"{k}:{n:,}" for k, n in v.items()) or "-"
        return f"{v:,}" if isinstance(v, int | float) else str(v)

    rows = [
        ("measured s", "window_s"),
        ("bob's events published", "published"),
        ("bob's events received", "received"),
        ("publish-to-receive p50 ms", "p50_ms"),
        ("publish-to-receive p99 ms", "p99_ms"),
        ("publish-to-receive max ms", "max_ms"),
        ("POST /v1/events p50 ms", "post_p50_ms"),
        ("POST /v1/events p99 ms", "post_p99_ms"),
        ("POST /v1/events max ms", "post_max_ms"),
        ("POST /v1/events answers", "post_statuses"),
        ("bob's subscription answers", "subscribe_statuses"),
        ("bob's deletions", "unsubscribe_statuses"),
        ("bob's subscription p50 ms", "subscribe_p50_ms"),
        ("bob's subscription max ms", "subscribe_max_ms"),
        ("server CPU %", "server_cpu_pct"),
        ("server RSS max MiB", "server_rss_max_mib"),
    ]
    out = ["| bob | a baseline | b flood |", "| --- | --- | --- |"]
    a, b = res.get("a", {}), res.get("b", {})
    out += [f"| {label} | {fmt(a.get(key))} | {fmt(b.get(key))} |" for label, key in rows]
    m = res.get("mallory", {})
    details = "; ".join(f'"{d}" x{n:,}' for d, n in m.get("details_409", {}).items()) or "-"
    others = "; ".join(f"{s}: {t[:120]}" for s, t in m.get("other_answers", {}).items()) or "-"
    out += [
        "",
        "| mallory | |",
        "| --- | --- |",
        f"| requests | {fmt(m.get('requests'))} on {fmt(m.get('connections_opened'))} "
        "connections |",
        f"| answers | {fmt(m.get('statuses'))} |",
        f"| 409 details | {details} |",
        f"| other answers | {others} |",
        f"| flood s | {fmt(m.get('duration_s'))} |",
        f"| requests/s | {fmt(m.get('requests_per_s'))} |",
        f"| answer p50 / p99 / max ms | {fmt(m.get('p50_ms'))} / {fmt(m.get('p99_ms'))} / "
        f"{fmt(m.get('max_ms'))} |",
        f"| subscriptions listed afterwards | {fmt(m.get('listed'))} "
        f"(GET {fmt(m.get('list_status'))} in {fmt(m.get('list_ms'))} ms) |",
        f"| flood client CPU % | {fmt(m.get('flood_cpu_pct'))} |",
        f"| Redis used_memory before / after MiB | {fmt(res.get('redis_used_memory_before_mib'))}"
        f" / {fmt(res.get('redis_used_memory_after_mib'))} |",
        f"| Redis bytes per held subscription | "
        f"{fmt(res.get('redis_bytes_per_held_subscription'))} |",
        f"| server RSS at the end MiB | {fmt(res.get('server_rss_end_mib'))} |",
    ]
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small and short: checks it works")
    p.add_argument("--flood", type=int, help=f"mallory's creations ({FLOOD:,}; quick 3,000)")
    p.add_argument("--concurrency", type=int, default=CONCURRENCY, help="mallory's connections")
    p.add_argument("--limit", type=int, default=LIMIT, help="NOTIFY_MAX_SUBSCRIPTIONS_PER_USER")
    p.add_argument("--phase", type=float, help=f"baseline seconds ({PHASE_S:g}; quick 4)")
    p.add_argument("--out", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    args.flood = args.flood or (3000 if args.quick else FLOOD)
    args.phase = args.phase or (4.0 if args.quick else PHASE_S)
    if min(args.flood, args.concurrency, args.limit) < 1:
        p.error("--flood, --concurrency and --limit must be at least 1")
    return args


def main() -> None:
    if sys.argv[1:2] == ["flood"]:
        flood_main(sys.argv[2:])
        return
    args = parse_args()
    load_side()
    res = measure(args)
    wrong = verdict(res, args)
    res["ok"], res["wrong"] = not wrong, wrong
    print(json.dumps(res), flush=True)
    print()
    print("\n".join(table(res)))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print()
    if wrong:
        print("FAILED: " + "; ".join(wrong))
        sys.exit(1)
    m = res["mallory"]
    print(
        f"ok: mallory got {m['statuses'].get('201', 0):,} x 201 and "
        f"{m['statuses'].get('409', 0):,} x 409, holds {m['listed']:,} (the limit "
        f"{args.limit:,}); bob received {res['bob']['received']:,} of "
        f"{res['bob']['published']:,} events and all his subscriptions were created"
    )


if __name__ == "__main__":
    main()
