"""SSE load generator: N raw TCP connections, frames counted at the byte level.

Parsing every frame in Python caps one core near 200,000-250,000 events/s, below what
the gateway can push; so this client counts frame markers (``b"\\ndata: "``) in the raw
bytes, which works the same through chunked transfer-encoding (a chunk-size line ends
in ``\\r\\n``, so a frame that starts a chunk is still preceded by ``\\n``), and parses only
the ``"t":<send time>`` field of a sample of connections for publish-to-receive latency.
It prints its own CPU use over the measured window: near 100 % means the figure is
limited by the load generator, not by the server.

    python bench/loadgen.py --port 8000 --path '/v1/stream?channel=bench.x&token=T' \
        --connections 1000 --duration 10

Protocol on stdout (one JSON object per line, for bench/scenarios.py):
``READY {...}`` once every connection has its response headers, then ``RESULT {...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any, cast

from procs import cpu_seconds

MARK = b"\ndata: "
EDGE = len(MARK) - 1
SEND_TIME = re.compile(rb'"t":(\d+\.\d+)[,}]')


@dataclass
class Shared:
    """What all connections of this process report into."""

    sampling: bool = False
    latencies: list[float] = field(default_factory=list)
    closed: int = 0
    first_event: asyncio.Event = field(default_factory=asyncio.Event)


class SseClient(asyncio.Protocol):
    """One SSE connection; ``events`` counts frames, nothing is parsed on the hot path."""

    def __init__(self, request: bytes, shared: Shared, sample: bool) -> None:
        self.request = request
        self.shared = shared
        self.sample = sample
        self.events = 0
        self.bytes = 0
        self.head = b""
        self.tail = b""
        self.status = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.status:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            line = self.head[: self.head.find(b"\r\n")]
            self.status = int(line.split(b" ", 2)[1])
            data, self.head = self.head[end + 4 :], b""
            if not self.ready.done():
                self.ready.set_result(None)
        n = data.count(MARK) + (self.tail + data[:EDGE]).count(MARK)
        self.tail = (self.tail + data)[-EDGE:] if len(data) < EDGE else data[-EDGE:]
        self.bytes += len(data)
        if n:
            self.events += n
            shared = self.shared
            if self.sample and shared.sampling:
                now = time.time()
                shared.latencies.extend(now - float(t) for t in SEND_TIME.findall(data))
            if not shared.first_event.is_set():
                shared.first_event.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.shared.closed += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the response headers"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of another process and its children (a multi-process gateway), from
    /proc (0 when it is not readable)."""
    return cpu_seconds(pid)


def runq_wait_seconds(pid: int) -> float:
    """Time the process's main thread sat runnable but off-CPU (others had the core)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def emit(tag: str, payload: dict[str, Any]) -> None:
    print(tag, json.dumps(payload), flush=True)


async def open_all(
    host: str, port: int, request: bytes, n: int, sample_every: int, shared: Shared, wave: int
) -> list[SseClient]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(wave)
    clients: list[SseClient] = []

    async def one(i: int) -> None:
        sample = sample_every > 0 and i % sample_every == 0
        for attempt in range(5):
            client = SseClient(request, shared, sample)
            try:
                async with gate:
                    await loop.create_connection(lambda c=client: c, host, port)  # type: ignore[misc]
                    await asyncio.wait_for(client.ready, 30)
                break
            except OSError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        clients.append(client)

    await asyncio.gather(*(one(i) for i in range(n)))
    return clients


async def run(args: argparse.Namespace) -> dict[str, Any]:
    shared = Shared()
    request = (
        f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
        "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    ).encode()
    t0 = time.monotonic()
    clients = await open_all(
        args.host, args.port, request, args.connections, args.sample_every, shared, args.wave
    )
    bad = sum(1 for c in clients if c.status != 200)
    emit(
        "READY",
        {"connections": len(clients), "non_200": bad, "connect_s": time.monotonic() - t0},
    )
    if args.hold:  # idle connections: keep them open, measure nothing here
        await asyncio.sleep(args.hold)
        return {"connections": len(clients), "closed": shared.closed, "held_s": args.hold}

    try:
        await asyncio.wait_for(shared.first_event.wait(), args.start_timeout)
    except TimeoutError:
        return {"error": "no event arrived", "connections": len(clients)}
    await asyncio.sleep(args.warmup)

    def total() -> int:
        return sum(c.events for c in clients)

    shared.sampling = True
    count0, wall0, cpu0 = total(), time.monotonic(), time.process_time()
    srv0 = proc_cpu_seconds(args.server_pid) if args.server_pid else 0.0
    wait0 = runq_wait_seconds(args.server_pid) if args.server_pid else 0.0
    self_wait0 = runq_wait_seconds(os.getpid())
    closed0 = shared.closed
    await asyncio.sleep(args.duration)
    count1, wall1, cpu1 = total(), time.monotonic(), time.process_time()
    srv1 = proc_cpu_seconds(args.server_pid) if args.server_pid else 0.0
    wait1 = runq_wait_seconds(args.server_pid) if args.server_pid else 0.0
    self_wait1 = runq_wait_seconds(os.getpid())
    shared.sampling = False
    wall = wall1 - wall0
    lat = shared.latencies
    per_conn = [c.events for c in clients]
    return {
        "connections": len(clients),
        "window_s": round(wall, 3),
        "events": count1 - count0,
        "events_per_s": round((count1 - count0) / wall),
        "loadgen_cpu_pct": round(100 * (cpu1 - cpu0) / wall, 1),
        "server_cpu_pct": round(100 * (srv1 - srv0) / wall, 1) if args.server_pid else None,
        # > a few % means other processes took the CPU: a noisy, not a clean, figure
        "server_runq_wait_pct": round(100 * (wait1 - wait0) / wall, 1),
        "loadgen_runq_wait_pct": round(100 * (self_wait1 - self_wait0) / wall, 1),
        "closed_in_window": shared.closed - closed0,
        "closed_total": shared.closed,
        "min_conn_events": min(per_conn),
        "max_conn_events": max(per_conn),
        "latency_samples": len(lat),
        "p50_ms": round(1000 * percentile(lat, 0.50), 2),
        "p99_ms": round(1000 * percentile(lat, 0.99), 2),
        "max_ms": round(1000 * max(lat), 2) if lat else None,
        "loadgen_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", required=True, help="request target, query included")
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--sample-every", type=int, default=50, help="every Kth connection")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--start-timeout", type=float, default=20.0)
    p.add_argument("--hold", type=float, default=0.0, help="idle: hold open this long, exit")
    p.add_argument("--wave", type=int, default=256, help="connects in flight at once")
    p.add_argument("--server-pid", type=int, default=0, help="report this process's CPU")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.connections + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(asyncio.wait_for(run(args), args.start_timeout + 600))
    emit("RESULT", result)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
