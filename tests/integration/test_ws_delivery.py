"""WebSocket event delivery on the hub's direct path: frames exact on the wire, a
socket that stops reading cut without holding others back, an expired token closed."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import struct
import time

import httpx
import pytest
import websockets

from tests.integration.clients import publish, publish_batch, ws, ws_recv
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import Gateway

pytestmark = pytest.mark.asyncio

BATCHES = 20  # of 10 events of 50 kB: 10 MB, more than loopback socket buffers hold


def _raw_socket(port: int, token: str, channel: str) -> tuple[socket.socket, bytes]:
    """A WebSocket opened by hand that subscribes, then reads nothing more; returns it
    with whatever arrived after the handshake so far."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /v1/ws?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    body = json.dumps({"op": "subscribe", "ref": "s", "channels": [channel]}).encode()
    sock.sendall(bytes((0x81, 0x80 | len(body))) + b"\0\0\0\0" + body)  # zero mask key
    while b'"op":"ok"' not in rest:
        rest += sock.recv(4096)
    return sock, rest


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of the whole server frames in ``data``, checking each header."""
    out, at = [], 0
    while at + 2 <= len(data):
        first, second = data[at], data[at + 1]
        assert first & 0x70 == 0 and second & 0x80 == 0, "no RSV bits, never masked"
        n, at = second & 0x7F, at + 2
        if n == 126:
            (n,), at = struct.unpack_from("!H", data, at), at + 2
        elif n == 127:
            (n,), at = struct.unpack_from("!Q", data, at), at + 8
        if at + n > len(data):
            break  # cut mid-frame when the socket was closed
        out.append((first & 0x0F, data[at : at + n]))
        at += n
    return out


def _drain(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    sock.close()
    return data


async def test_a_stalled_socket_is_cut_and_resumes_losing_nothing(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    gw = gateway_factory(NOTIFY_MAX_QUEUED="20", NOTIFY_SEND_TIMEOUT_SECONDS="2")
    token = make_token(publish=[">"], subscribe=[">"])
    async with ws(gw.base_url, token) as healthy:
        await healthy.send(json.dumps({"op": "subscribe", "ref": 1, "channels": ["slow"]}))
        assert (await ws_recv(healthy))["op"] == "ok"
        # where to resume from if not one whole event reaches the stalled socket
        start = await asyncio.to_thread(publish, gw.base_url, token, "other")
        stalled, first = await asyncio.to_thread(_raw_socket, gw.port, token, "slow")

        async def read_all(n: int) -> list[str]:
            return [(await ws_recv(healthy, 60))["event"]["id"] for _ in range(n)]

        reading = asyncio.create_task(read_all(BATCHES * 10))
        blob = "x" * 50000
        ids: list[str] = []
        for _ in range(BATCHES):
            ids += await asyncio.to_thread(
                publish_batch,
                gw.base_url,
                token,
                [{"channel": "slow", "type": "t", "data": blob} for _ in range(10)],
            )
        # the healthy socket, reading as it should, is not held back by the stalled one
        assert await reading == ids
    cut_at = time.monotonic()
    frames = _frames(first + await asyncio.to_thread(_drain, stalled, 3.0))
    # reset, not closed gracefully: megabytes left in the gateway's kernel buffers would
    # trickle to the stalled peer for minutes (here 100 s at 40 kB/s)
    assert time.monotonic() - cut_at < 30
    texts = [json.loads(p) for op, p in frames if op == 0x1]
    # the subscribe's answer carries where the socket starts (issue 11)
    assert {k: v for k, v in texts[0].items() if k != "position"} == {"op": "ok", "ref": "s"}
    assert "position" in texts[0]
    got = [t["event"]["id"] for t in texts[1:]]
    assert len(got) < len(ids), "the stalled socket should have been cut off"
    assert got == ids[: len(got)]
    async with httpx.AsyncClient(base_url=gw.base_url, trust_env=False) as c:
        text = (await c.get("/metrics")).text
    assert re.search(r"notify_slow_consumer_disconnects_total [1-9]", text)
    async with ws(gw.base_url, token) as again:
        cursor = got[-1] if got else start
        subscribe = {"op": "subscribe", "ref": 2, "channels": ["slow"], "last_event_id": cursor}
        await again.send(json.dumps(subscribe))
        assert (await ws_recv(again))["op"] == "ok"
        rest = [(await ws_recv(again, 30))["event"]["id"] for _ in range(len(ids) - len(got))]
    assert got + rest == ids


async def test_event_frames_are_exact_on_the_wire(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    sock, first = await asyncio.to_thread(_raw_socket, gateway.port, token, "wire")
    sizes = [0, 100, 200, 65400]  # data that makes 7-bit, 16-bit and 64-bit lengths
    events = [{"channel": "wire", "type": "t", "data": "y" * n} for n in sizes]
    ids = await asyncio.to_thread(publish_batch, gateway.base_url, token, events)
    deadline = time.monotonic() + 10
    data = first
    sock.settimeout(1)
    while len([f for f in _frames(data) if f[0] == 0x1]) < 1 + len(ids):
        assert time.monotonic() < deadline, "events did not arrive"
        data += sock.recv(65536)
    sock.close()
    texts = [json.loads(p) for op, p in _frames(data) if op == 0x1]
    # the subscribe's answer carries where the socket starts (issue 11)
    assert {k: v for k, v in texts[0].items() if k != "position"} == {"op": "ok", "ref": "s"}
    assert "position" in texts[0]
    assert [t["op"] for t in texts[1:]] == ["event"] * len(ids)
    assert [t["event"]["id"] for t in texts[1:]] == ids
    assert [len(t["event"]["data"]) for t in texts[1:]] == sizes


async def test_an_expired_token_closes_the_socket_with_1008(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(subscribe=[">"], ttl=2)
    started = time.monotonic()
    async with ws(gateway.base_url, token) as conn:
        await conn.send(json.dumps({"op": "subscribe", "ref": 1, "channels": ["e"]}))
        assert (await ws_recv(conn))["op"] == "ok"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws_recv(conn, timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason == "token_expired"
    assert time.monotonic() - started < 8
