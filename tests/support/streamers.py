"""Stream clients that behave like a careful browser under faults: each follows its
channels over SSE or WebSocket, records every event id it receives (with the time),
and when its connection ends it reconnects, to the next gateway in its list, with its
last id. A client can be told to stop reading for a while (a slow consumer).

They are light enough to run hundreds in one process: SSE is parsed from the raw socket
(HTTP/1.1 chunked framing undone by hand), WebSocket frames through ``websockets``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import websockets

Transport = Literal["sse", "ws"]
RECONNECT_DELAY = 0.2
MAX_RECONNECTS = 100_000  # a bound on the reconnect loop; a run never gets near it


@dataclass
class StreamStats:
    name: str
    transport: Transport
    channels: list[str]
    ids: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # time.time() of each id's arrival
    connects: int = 0
    drops: int = 0
    stalled_drops: int = 0  # connections that ended while the client was not reading
    received_at_drops: list[int] = field(default_factory=list)  # len(ids) at each drop
    gaps: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    position: str | None = None
    """Where to resume from: the last event's id, or the position the stream opened
    at when no event has come since (SSE's first frame, WebSocket's subscribe ok)."""

    @property
    def last_id(self) -> str | None:
        return self.position

    def duplicates(self) -> int:
        return len(self.ids) - len(set(self.ids))

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "transport": self.transport,
            "channels": self.channels,
            "ids": self.ids,
            "times": self.times,
            "connects": self.connects,
            "drops": self.drops,
            "stalled_drops": self.stalled_drops,
            "gaps": self.gaps,
            "errors": dict(self.errors),
        }


class StreamClient:
    def __init__(
        self,
        name: str,
        transport: Transport,
        gateways: list[str],
        channels: list[str],
        token: str,
        *,
        small_buffer: bool = False,
    ) -> None:
        """``gateways`` are ``host:port``; the client starts on the first and moves to
        the next after each dropped connection. ``small_buffer`` shrinks the socket's
        receive buffer so that a stall fills the gateway's queue quickly."""
        self.stats = StreamStats(name, transport, list(channels))
        self.gateways = list(gateways)
        self.token = token
        self.small_buffer = small_buffer
        self.reading = asyncio.Event()
        self.reading.set()
        self._stop = asyncio.Event()
        self._turn = 0

    def stall(self) -> None:
        self.reading.clear()

    def resume(self) -> None:
        self.reading.set()

    def stop(self) -> None:
        self._stop.set()
        self.reading.set()

    async def run(self) -> None:
        for _ in range(MAX_RECONNECTS):
            if self._stop.is_set():
                return
            host, _, port = self.gateways[self._turn % len(self.gateways)].rpartition(":")
            stalled = False
            try:
                if self.stats.transport == "sse":
                    await self._sse(host, int(port))
                else:
                    await self._ws(host, int(port))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure means: reconnect elsewhere
                self.stats.errors[type(exc).__name__] += 1
            stalled = not self.reading.is_set()
            if self._stop.is_set():
                return
            self.stats.drops += 1
            self.stats.received_at_drops.append(len(self.stats.ids))
            self.stats.stalled_drops += stalled
            self._turn += 1
            await self.reading.wait()  # a stalled client comes back only when it reads again
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), RECONNECT_DELAY)

    def _record(self, event_id: str) -> None:
        self.stats.position = event_id
        self.stats.ids.append(event_id)
        self.stats.times.append(time.time())

    async def _until_stopped(self, coro: asyncio.Future[None] | asyncio.Task[None]) -> None:
        stop: asyncio.Future[Any] = asyncio.ensure_future(self._stop.wait())
        waited: list[asyncio.Future[Any]] = [coro, stop]
        try:
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not coro.done():
                coro.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await coro
        if coro.done() and not coro.cancelled() and coro.exception() is not None:
            raise coro.exception()  # type: ignore[misc]

    # --- SSE -----------------------------------------------------------------

    async def _sse(self, host: str, port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if self.small_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            async with asyncio.timeout(5):
                await asyncio.get_running_loop().sock_connect(sock, (host, port))
            reader, writer = await asyncio.open_connection(
                sock=sock, limit=16384 if self.small_buffer else 1 << 20
            )
        except BaseException:
            sock.close()
            raise
        try:
            query = urlencode(
                [("channel", c) for c in self.stats.channels] + [("token", self.token)]
            )
            head = f"GET /v1/stream?{query} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            if self.stats.last_id:
                head += f"Last-Event-ID: {self.stats.last_id}\r\n"
            writer.write((head + "\r\n").encode())
            await self._until_stopped(asyncio.ensure_future(self._read_sse(reader)))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_sse(self, reader: asyncio.StreamReader) -> None:
        async with asyncio.timeout(10):
            status = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
        if b" 200 " not in status:
            raise ConnectionError(f"stream answered {status!r}")
        self.stats.connects += 1
        pending = b""
        event: str | None = None
        frame_id: str | None = None
        while True:
            size_line = await reader.readline()
            if not size_line:
                return
            size = int(size_line.strip() or b"0", 16)
            if size == 0:
                return
            chunk = await reader.readexactly(size + 2)
            pending += chunk[:-2]
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.startswith(b"id: "):
                    frame_id = line[4:].decode()
                elif line.startswith(b"event: "):
                    event = line[7:].decode()
                elif line.startswith(b"data: ") and event is not None:
                    self.stats.gaps.append(event + " " + line[6:].decode())
                elif line.startswith(b"data: ") and frame_id is not None:
                    self._record(frame_id)
                elif not line:
                    if frame_id is not None:  # with or without data, as a browser does
                        self.stats.position = frame_id
                    event = frame_id = None
            if not self.reading.is_set():
                await self.reading.wait()

    # --- WebSocket -----------------------------------------------------------

    async def _ws(self, host: str, port: int) -> None:
        url = f"ws://{host}:{port}/v1/ws?token={self.token}"
        async with websockets.connect(
            url, open_timeout=5, max_queue=4 if self.small_buffer else 64, close_timeout=1
        ) as conn:
            frame: dict[str, object] = {
                "op": "subscribe",
                "ref": "s",
                "channels": self.stats.channels,
            }
            if self.stats.last_id:
                frame["last_event_id"] = self.stats.last_id
            await conn.send(json.dumps(frame))
            self.stats.connects += 1

            async def read() -> None:
                async for message in conn:
                    body = json.loads(message)
                    op = body.get("op")
                    if op == "event":
                        self._record(body["event"]["id"])
                    elif op == "ok" and body.get("ref") == "s" and self.stats.position is None:
                        self.stats.position = body["position"]
                    elif op == "gap":
                        self.stats.gaps.append("gap " + str(body.get("reason")))
                    elif op == "error":
                        raise ConnectionError(f"error frame: {body}")
                    if not self.reading.is_set():
                        await self.reading.wait()

            await self._until_stopped(asyncio.ensure_future(read()))
