"""WebSocket load generator: N raw TCP connections speaking notify's ``/v1/ws``.

The same lean client as bench/loadgen.py, for WebSockets: each connection upgrades,
sends one subscribe frame, waits for its ``ok``, then counts event frames by the
``{"op":"event"`` prefix in the raw bytes (nothing is parsed on the hot path) and
reads the ``"t":<send time>`` field of a sample of connections for latency. Server
pings are answered with a pong, found by their header in the raw bytes (event text is
ASCII JSON, so 0x89 never starts anything else; a false hit only sends an unsolicited
pong, which a server ignores). Client frames are masked with a zero key (legal, and
the payload goes out as is).

    python bench/wsloadgen.py --port 8000 --path '/v1/ws?token=T' --channel bench.x \
        --connections 1000 --duration 10

With ``--socketio`` it speaks Socket.IO v5 over Engine.IO v4 instead, to the naive peer
bench/sio_peer_app.py (``--path '/socket.io/?EIO=4&transport=websocket'``): it waits for
the open packet ``0{"sid"...``, connects to the default namespace (``40``), emits
``421["subscribe",<channel>]`` and waits for its ack ``431[``; then it counts
``42["event",`` in the raw bytes, samples latency the same way, and answers the
Engine.IO ping (a one-byte text frame ``2``) with ``3`` as well as WebSocket pings.

Same output protocol as bench/loadgen.py: ``READY {...}`` once every connection has
its subscription confirmed, then ``RESULT {...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import sys
import time
from typing import Any, cast

from loadgen import (
    SEND_TIME,
    Shared,
    emit,
    parse_args,
    percentile,
    proc_cpu_seconds,
    runq_wait_seconds,
)

MARK = b'{"op":"event"'
OK = b'{"op":"ok"'
PING = b"\x89\x04"  # uvicorn pings with a 4-byte payload
EDGE = len(MARK) - 1
SIO_MARK = b'42["event",'  # an Engine.IO message (4) holding a Socket.IO event (2)
SIO_OPEN = b'0{"sid"'  # Engine.IO open packet
SIO_CONNECTED = b'40{"sid"'  # Socket.IO connect accepted on the default namespace
SIO_REFUSED = b"44{"  # Socket.IO connect error
SIO_ACK = b"431["  # the ack of the subscribe event (ack id 1)
EIO_PING = b"\x81\x012"  # a one-byte text frame "2": event frames are longer


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame with a zero mask key (the payload is sent unchanged)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class WsClient(asyncio.Protocol):
    """One WebSocket connection; ``events`` counts event frames at the byte level."""

    MARK = MARK  # what starts the payload of an event frame
    EDGE = EDGE

    def __init__(self, request: bytes, subscribe: bytes, shared: Shared, sample: bool) -> None:
        self.request = request
        self.subscribe = subscribe
        self.shared = shared
        self.sample = sample
        self.events = 0
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
            if self.status != 101:
                self.ready.set_result(None)
                return
            self.upgraded()
        if not self.ready.done():
            self.handshake(data)
            return
        mark, edge = self.MARK, self.EDGE
        n = data.count(mark) + (self.tail + data[:edge]).count(mark)
        self.tail = (self.tail + data)[-edge:] if len(data) < edge else data[-edge:]
        if n:
            self.events += n
            shared = self.shared
            if self.sample and shared.sampling:
                now = time.time()
                shared.latencies.extend(now - float(t) for t in SEND_TIME.findall(data))
            if not shared.first_event.is_set():
                shared.first_event.set()
        self.pong(data)

    def upgraded(self) -> None:
        """The upgrade went through: subscribe."""
        self.transport.write(self.subscribe)  # type: ignore[union-attr]

    def handshake(self, data: bytes) -> None:
        """Bytes before the subscription is confirmed."""
        self.head += data
        if OK in self.head:
            self.head = b""
            self.ready.set_result(None)

    def pong(self, data: bytes) -> None:
        """Answer a server ping found in ``data``."""
        at = data.find(PING)
        if at >= 0 and len(data) >= at + 6:
            self.transport.write(client_frame(data[at + 2 : at + 6], 0xA))  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.shared.closed += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the subscription"))


class SioClient(WsClient):
    """One Socket.IO v5 connection over an Engine.IO v4 WebSocket (``subscribe`` is the
    ``421["subscribe",...]`` frame): the server speaks first, with its open packet."""

    MARK = SIO_MARK
    EDGE = len(SIO_MARK) - 1
    CONNECT = client_frame(b"40")
    EIO_PONG = client_frame(b"3")

    def __init__(self, request: bytes, subscribe: bytes, shared: Shared, sample: bool) -> None:
        super().__init__(request, subscribe, shared, sample)
        self.stage = 0  # 0: awaiting the open packet, 1: the connect, 2: the ack

    def upgraded(self) -> None:
        pass

    def handshake(self, data: bytes) -> None:
        self.head += data
        transport = self.transport
        assert transport is not None
        if self.stage == 0:
            at = self.head.find(SIO_OPEN)
            if at < 0:
                return
            transport.write(self.CONNECT)
            self.stage, self.head = 1, self.head[at + len(SIO_OPEN) :]
        if self.stage == 1:
            if SIO_REFUSED in self.head:
                self.ready.set_exception(ConnectionError("socket.io connect refused"))
                transport.close()
                return
            at = self.head.find(SIO_CONNECTED)
            if at < 0:
                return
            transport.write(self.subscribe)
            self.stage, self.head = 2, self.head[at + len(SIO_CONNECTED) :]
        if SIO_ACK in self.head:
            self.head = b""
            self.ready.set_result(None)
        self.pong(data)

    def pong(self, data: bytes) -> None:
        super().pong(data)
        if EIO_PING in data:
            self.transport.write(self.EIO_PONG)  # type: ignore[union-attr]


async def open_all(args: argparse.Namespace, shared: Shared) -> list[WsClient]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(args.wave)
    clients: list[WsClient] = []
    kind = SioClient if args.socketio else WsClient
    if args.socketio:
        body: Any = ["subscribe", args.channel]
        subscribe = client_frame(b"421" + json.dumps(body, separators=(",", ":")).encode())
    else:
        body = {"op": "subscribe", "ref": "1", "channels": [args.channel]}
        subscribe = client_frame(json.dumps(body, separators=(",", ":")).encode())

    async def one(i: int) -> None:
        sample = args.sample_every > 0 and i % args.sample_every == 0
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        for attempt in range(5):
            client = kind(request, subscribe, shared, sample)
            try:
                async with gate:
                    await loop.create_connection(lambda c=client: c, args.host, args.port)  # type: ignore[misc]
                    await asyncio.wait_for(client.ready, 30)
                break
            except OSError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        clients.append(client)

    await asyncio.gather(*(one(i) for i in range(args.connections)))
    return clients


async def run(args: argparse.Namespace) -> dict[str, Any]:
    shared = Shared()
    t0 = time.monotonic()
    clients = await open_all(args, shared)
    bad = sum(1 for c in clients if c.status != 101)
    emit("READY", {"connections": len(clients), "non_200": bad, "connect_s": time.monotonic() - t0})
    if args.hold:
        await asyncio.sleep(args.hold)
        return {"connections": len(clients), "closed": shared.closed, "held_s": args.hold}
    try:
        await asyncio.wait_for(shared.first_event.wait(), args.start_timeout)
    except TimeoutError:
        return {"error": "no event arrived", "connections": len(clients)}
    await asyncio.sleep(args.warmup)

    def total() -> int:
        return sum(c.events for c in clients)

    pid = args.server_pid
    shared.sampling = True
    count0, wall0, cpu0 = total(), time.monotonic(), time.process_time()
    srv0, wait0 = (proc_cpu_seconds(pid), runq_wait_seconds(pid)) if pid else (0.0, 0.0)
    self_wait0, closed0 = runq_wait_seconds(os.getpid()), shared.closed
    await asyncio.sleep(args.duration)
    count1, wall1, cpu1 = total(), time.monotonic(), time.process_time()
    srv1, wait1 = (proc_cpu_seconds(pid), runq_wait_seconds(pid)) if pid else (0.0, 0.0)
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
        "server_cpu_pct": round(100 * (srv1 - srv0) / wall, 1) if pid else None,
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


def main(argv: list[str] | None = None) -> None:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--channel", default="bench.x")
    extra.add_argument("--socketio", action="store_true", help="Socket.IO v5 (the sio peer)")
    mine, rest = extra.parse_known_args(argv)
    args = parse_args(rest)
    args.channel, args.socketio = mine.channel, mine.socketio
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.connections + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    emit("RESULT", runner(asyncio.wait_for(run(args), args.start_timeout + 600)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
