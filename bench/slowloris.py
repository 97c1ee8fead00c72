"""Slowloris against one gateway: what clients that trickle their requests cost the others.

A fresh redis-server and one ``notify serve`` (request deadline
``NOTIFY_REQUEST_TIMEOUT_SECONDS``, 10 s unless ``--timeout``); 1,000 SSE subscribers
(bench/loadgen.py) on one channel; 100 events/s published by HTTP POST on one keep-alive
connection. The same measurement twice:

    a  baseline
    b  with 2,000 slowloris connections (``--slow``) trickling header bytes, each opened
       again as soon as the server closes it; the first ones are spread over one
       deadline so that the server's closes are spread too

For each phase: publish-to-receive latency at the subscribers (p50/p99/max), POST latency
and answers, delivered events/s, the server's CPU, RSS and open descriptors. For the
crowd: connections open at peak, how long the server held each (median/p99/max), the
408s seen, and any connection held past the deadline plus two sweep periods.

    .venv/bin/python bench/slowloris.py              # 30 s per phase, about 90 s
    .venv/bin/python bench/slowloris.py --quick      # a short check that it works
    .venv/bin/python bench/slowloris.py --slow 5000 --timeout 5 --phase 60

The gateway runs alone on CPU 0; Redis and all the load (this process and its publisher,
the subscribers, the crowd) on CPU 1. ``crowd`` as the first argument runs the crowd
alone (this script starts it so): it prints ``READY {...}`` once every slot has
connected and ``RESULT {...}`` when its standard input closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs import (
    Lines,
    Server,
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
    token,
)

Result = dict[str, Any]
HOST = "127.0.0.1"
CHANNEL = "bench.calm"
SUBSCRIBERS = 1000
RATE = 100.0
SLOW = 2000
PHASE_S = 30.0
WARMUP_S = 2.0
SWEEP_S = 1.0
"""The gateway's sweeper period: a request expires at most this long after its deadline."""
FD_RESERVE = 256
"""Descriptors kept for everything but the crowd and the subscribers."""

now = time.monotonic


# --- the crowd (a child process) ------------------------------------------------------

FIRST = f"GET /v1/stream?channel=bench.slow HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: ".encode()


class Slow(asyncio.Protocol):
    """One slowloris connection: remembers the start of what the server sent, and when
    the server closed it."""

    def __init__(self, lost: asyncio.Future[float]) -> None:
        self.lost = lost
        self.head = b""

    def data_received(self, data: bytes) -> None:
        if len(self.head) < 16:
            self.head += data[:16]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(now())


@dataclass
class Crowd:
    open_now: int = 0
    peak: int = 0
    opened: int = 0
    connect_errors: int = 0
    held: list[float] = field(default_factory=list)
    timeouts: int = 0
    """Closes that came with a 408."""
    connected_slots: set[int] = field(default_factory=set)
    all_connected: asyncio.Event = field(default_factory=asyncio.Event)
    ages_at_stop: list[float] = field(default_factory=list)


async def slot(i: int, crowd: Crowd, args: argparse.Namespace, halt: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(args.ramp * i / args.slow)
    while not halt.is_set():
        lost: asyncio.Future[float] = loop.create_future()
        try:
            transport, proto = await loop.create_connection(
                functools.partial(Slow, lost), HOST, args.port
            )
        except OSError:
            crowd.connect_errors += 1
            await asyncio.sleep(0.5)
            continue
        opened = now()
        crowd.opened += 1
        crowd.open_now += 1
        crowd.peak = max(crowd.peak, crowd.open_now)
        crowd.connected_slots.add(i)
        if len(crowd.connected_slots) == args.slow:
            crowd.all_connected.set()
        try:
            transport.write(FIRST)
            while not lost.done() and not halt.is_set():
                await asyncio.wait([lost], timeout=args.every)
                if not lost.done():
                    transport.write(b"a")
        finally:
            crowd.open_now -= 1
        if lost.done():
            crowd.held.append(lost.result() - opened)
            crowd.timeouts += proto.head.startswith(b"HTTP/1.1 408")
        else:
            crowd.ages_at_stop.append(now() - opened)
            transport.close()


async def crowd_run(args: argparse.Namespace) -> Result:
    loop = asyncio.get_running_loop()
    halt = asyncio.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(halt.set)

    threading.Thread(target=wait_for_eof, daemon=True).start()
    loop.call_later(args.limit, halt.set)
    crowd = Crowd()
    cpu0, wall0 = time.process_time(), now()
    slots = [asyncio.create_task(slot(i, crowd, args, halt)) for i in range(args.slow)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(crowd.all_connected.wait(), args.ramp + 60)
    emit(
        "READY",
        {
            "slots_connected": len(crowd.connected_slots),
            "open": crowd.open_now,
            "s": round(now() - wall0, 2),
        },
    )
    await halt.wait()
    await asyncio.gather(*slots)
    wall = now() - wall0
    held = crowd.held
    over = args.timeout + 2 * SWEEP_S
    return {
        "slow": args.slow,
        "every_s": args.every,
        "peak_open": crowd.peak,
        "opened": crowd.opened,
        "connect_errors": crowd.connect_errors,
        "closed_by_server": len(held),
        "timeouts_408": crowd.timeouts,
        "closed_without_408": len(held) - crowd.timeouts,
        "held_median_s": round(statistics.median(held), 3) if held else None,
        "held_p99_s": round(p, 3) if (p := percentile(held, 0.99)) is not None else None,
        "held_max_s": round(max(held), 3) if held else None,
        "held_min_s": round(min(held), 3) if held else None,
        f"held_over_{over:g}_s": sum(h > over for h in held + crowd.ages_at_stop),
        "open_at_stop": len(crowd.ages_at_stop),
        "crowd_cpu_pct": round(100 * (time.process_time() - cpu0) / wall, 1),
    }


def crowd_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="slowloris.py crowd")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--slow", type=int, required=True)
    p.add_argument("--every", type=float, required=True)
    p.add_argument("--ramp", type=float, required=True)
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--limit", type=float, required=True, help="stop after this long anyway")
    args = p.parse_args(argv)
    emit("RESULT", run_loop(crowd_run(args)))


# --- the measuring side ---------------------------------------------------------------


class Publisher:
    """``rate`` POST /v1/events a second on a schedule, each timed, on ``connections``
    keep-alive connections taking turns (one alone falls behind as soon as an answer
    takes longer than 1/rate). The event's data carries its send time, for the
    subscribers' latency."""

    def __init__(self, port: int, rate: float, connections: int = 4) -> None:
        self.port = port
        self.rate = rate
        self.halt = threading.Event()
        self.records: list[tuple[float, float, int]] = []
        """(sent at, seconds to the answer, status; 0 for a transport error)"""
        self.headers = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json"}
        self.start_at = 0.0
        self.threads = [
            threading.Thread(target=self.run, args=(k, connections), daemon=True)
            for k in range(connections)
        ]

    def start(self) -> None:
        self.start_at = now()
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.halt.set()
        for thread in self.threads:
            thread.join(15)

    def run(self, first: int, step: int) -> None:
        conn: http.client.HTTPConnection | None = None
        n = first
        while not self.halt.is_set():
            wait = self.start_at + n / self.rate - now()
            if wait > 0:
                self.halt.wait(wait)
                continue
            data = {"t": time.time(), "n": n}
            body = json.dumps({"channel": CHANNEL, "type": "bench", "data": data})
            sent = now()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
                conn.request("POST", "/v1/events", body, self.headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                status = 0
                if conn is not None:
                    conn.close()
                conn = None
            self.records.append((sent, now() - sent, status))
            n += step
        if conn is not None:
            conn.close()

    def between(self, start: float, end: float) -> Result:
        window = [(s, lat, code) for s, lat, code in self.records if start <= s < end]
        ok = [lat for _, lat, code in window if code == 202]
        statuses: dict[str, int] = {}
        for _, _, code in window:
            statuses[str(code)] = statuses.get(str(code), 0) + 1
        return {
            "posts": len(window),
            "posts_per_s": round(len(window) / (end - start), 1),
            "post_statuses": statuses,
            "post_p50_ms": ms(percentile(ok, 0.5)),
            "post_p99_ms": ms(percentile(ok, 0.99)),
            "post_max_ms": ms(max(ok)) if ok else None,
        }


class Sampler(threading.Thread):
    """The gateway's RSS and open descriptors, twice a second."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.halt = threading.Event()
        self.samples: list[tuple[float, int, int]] = []

    def run(self) -> None:
        while not self.halt.wait(0.5):
            with contextlib.suppress(OSError, RuntimeError):
                fds = len(os.listdir(f"/proc/{self.pid}/fd"))
                self.samples.append((now(), rss_kib(self.pid), fds))

    def between(self, start: float, end: float) -> Result:
        window = [(rss, fds) for t, rss, fds in self.samples if start <= t < end]
        if not window:
            return {}
        return {
            "server_rss_max_mib": round(max(r for r, _ in window) / 1024, 1),
            "server_fds_max": max(f for _, f in window),
            "server_fds_min": min(f for _, f in window),
        }


def phase(
    name: str, server: Server, args: argparse.Namespace, pub: Publisher, sampler: Sampler
) -> Result:
    """Fresh subscribers, measured for ``args.phase`` seconds while the publisher runs."""
    print(f"== {name}: {args.subscribers} subscribers, {args.phase:g} s ...", flush=True)
    lg, lines = spawn_load(
        "loadgen.py",
        [
            "--port", str(server.port),
            "--path", server.stream_path.format(channel=CHANNEL),
            "--connections", str(args.subscribers),
            "--duration", str(args.phase),
            "--warmup", str(WARMUP_S),
            "--sample-every", "10",
            "--server-pid", str(server.pid),
        ],
    )  # fmt: skip
    try:
        ready = json.loads(lines.expect("READY", 120))
        got: Result = json.loads(lines.expect("RESULT", args.phase + WARMUP_S + 60))
        end = now()
    finally:
        stop(lg)
    if "error" in got:
        raise RuntimeError(f"loadgen: {got}")
    start = end - float(got["window_s"])  # loadgen's window ended as it printed
    return {
        "connect_s": round(ready["connect_s"], 2),
        "non_200": ready["non_200"],
        "p50_ms": got["p50_ms"],
        "p99_ms": got["p99_ms"],
        "max_ms": got["max_ms"],
        "latency_samples": got["latency_samples"],
        "events_per_s": got["events_per_s"],
        "expected_events_per_s": round(args.rate * args.subscribers),
        "subscribers_cut": got["closed_in_window"],
        "server_cpu_pct": got["server_cpu_pct"],
        "server_runq_wait_pct": got["server_runq_wait_pct"],
        "loadgen_cpu_pct": got["loadgen_cpu_pct"],
        **pub.between(start, end),
        **sampler.between(start, end),
    }


def spawn_crowd(server: Server, args: argparse.Namespace) -> tuple[subprocess.Popen[str], Lines]:
    limit = args.ramp + 2 * (args.phase + WARMUP_S) + 300  # a bound, should we never say stop
    argv = ["crowd", "--port", str(server.port)]
    argv += ["--slow", str(args.slow), "--every", str(args.every), "--ramp", str(args.ramp)]
    argv += ["--timeout", str(args.timeout), "--limit", str(limit)]
    return spawn_load(Path(__file__).name, argv, stdin=True)


def measure(args: argparse.Namespace) -> Result:
    res: Result = {"settings": {k: v for k, v in vars(args).items() if k != "quick"}}
    with (
        tempfile.TemporaryDirectory(prefix="notify-slowloris-") as tmp,
        redis_server(Path(tmp)) as url,
        notify_gateway(url, Path(tmp), request_timeout_seconds=str(args.timeout)) as server,
    ):
        pub, sampler = Publisher(server.port, args.rate), Sampler(server.pid)
        pub.start()
        sampler.start()
        try:
            res["a"] = phase("a baseline", server, args, pub, sampler)
            print(f"== crowd: {args.slow} slowloris connections, ramp {args.ramp:g} s ...")
            crowd, lines = spawn_crowd(server, args)
            try:
                res["crowd_ready"] = json.loads(lines.expect("READY", args.ramp + 120))
                res["b"] = phase("b slowloris", server, args, pub, sampler)
                assert crowd.stdin is not None
                crowd.stdin.close()
                res["crowd"] = json.loads(lines.expect("RESULT", args.every + 60))
            finally:
                stop(crowd)
            res["server_rss_end_mib"] = round(rss_kib(server.pid) / 1024, 1)
        finally:
            pub.stop()
            sampler.halt.set()
            sampler.join(5)
    return res


def table(res: Result) -> list[str]:
    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, dict):
            return " ".join(f"{k}:{n}" for k, n in sorted(v.items())) or "-"
        return f"{v:,}" if isinstance(v, int | float) else str(v)

    rows = [
        ("publish-to-receive p50 ms", "p50_ms"),
        ("publish-to-receive p99 ms", "p99_ms"),
        ("publish-to-receive max ms", "max_ms"),
        ("POST p50 ms", "post_p50_ms"),
        ("POST p99 ms", "post_p99_ms"),
        ("POST max ms", "post_max_ms"),
        ("POSTs per s", "posts_per_s"),
        ("POST answers", "post_statuses"),
        ("delivered events/s", "events_per_s"),
        ("expected events/s", "expected_events_per_s"),
        ("subscribers cut", "subscribers_cut"),
        ("subscribers' connect s", "connect_s"),
        ("server CPU %", "server_cpu_pct"),
        ("server run-queue wait % (noise)", "server_runq_wait_pct"),
        ("server RSS max MiB", "server_rss_max_mib"),
        ("server open descriptors max", "server_fds_max"),
    ]
    out = ["| measure | a baseline | b slowloris |", "| --- | --- | --- |"]
    a, b = res.get("a", {}), res.get("b", {})
    out += [f"| {label} | {fmt(a.get(key))} | {fmt(b.get(key))} |" for label, key in rows]
    crowd = res.get("crowd", {})
    over = next((k for k in crowd if k.startswith("held_over_")), None)
    out += [
        "",
        "| slowloris | |",
        "| --- | --- |",
        f"| connections open at peak | {fmt(crowd.get('peak_open'))} of {fmt(crowd.get('slow'))} |",
        f"| connections opened | {fmt(crowd.get('opened'))} |",
        f"| closed by the server | {fmt(crowd.get('closed_by_server'))} |",
        f"| 408s seen | {fmt(crowd.get('timeouts_408'))} |",
        f"| held by the server: median / p99 / max s | {fmt(crowd.get('held_median_s'))} / "
        f"{fmt(crowd.get('held_p99_s'))} / {fmt(crowd.get('held_max_s'))} |",
        f"| held past the deadline + 2 sweeps | {fmt(crowd.get(over) if over else None)} |",
        f"| connect errors | {fmt(crowd.get('connect_errors'))} |",
        f"| crowd CPU % | {fmt(crowd.get('crowd_cpu_pct'))} |",
        f"| server RSS at the end MiB | {fmt(res.get('server_rss_end_mib'))} |",
    ]
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small and short: checks it works")
    p.add_argument("--timeout", type=float, help="NOTIFY_REQUEST_TIMEOUT_SECONDS (10; quick 2)")
    p.add_argument("--slow", type=int, help=f"slowloris connections ({SLOW:,}; quick 300)")
    p.add_argument("--subscribers", type=int, help=f"SSE subscribers ({SUBSCRIBERS:,}; quick 200)")
    p.add_argument("--rate", type=float, default=RATE, help="events/s published by POST")
    p.add_argument("--phase", type=float, help=f"measured seconds per phase ({PHASE_S:g}; quick 5)")
    p.add_argument("--every", type=float, default=0.5, help="seconds between trickled bytes")
    p.add_argument("--ramp", type=float, help="seconds over which the crowd first connects")
    p.add_argument("--out", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    quick = args.quick
    args.timeout = args.timeout or (2.0 if quick else 10.0)
    args.slow = args.slow or (300 if quick else SLOW)
    args.subscribers = args.subscribers or (200 if quick else SUBSCRIBERS)
    args.phase = args.phase or (5.0 if quick else PHASE_S)
    args.ramp = args.timeout if args.ramp is None else args.ramp
    return args


def fit_descriptors(args: argparse.Namespace) -> None:
    """Raise the open-files limit (children inherit it) and bound the crowd by it: the
    gateway holds one descriptor for each subscriber and each slow connection."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    room = hard - args.subscribers - FD_RESERVE
    if args.slow > room:
        print(f"warning: open-files limit {hard}: {args.slow} slow connections cut to {room}")
        args.slow = max(room, 1)


def main() -> None:
    if sys.argv[1:2] == ["crowd"]:
        crowd_main(sys.argv[2:])
        return
    args = parse_args()
    fit_descriptors(args)
    load_side()
    res = measure(args)
    print(json.dumps(res), flush=True)
    print()
    print("\n".join(table(res)))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
