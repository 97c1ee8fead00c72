"""WebSocket endings and gaps against a real gateway: each reason has its close code
(1008 token expired, 1012 shutdown, 1013 slow consumer) and a resume older than the
history gets a ``gap`` frame before the oldest event kept."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
import websockets

from tests.integration.clients import publish_batch, ws, ws_recv
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import Gateway

pytestmark = pytest.mark.asyncio


async def closed_with(conn: websockets.ClientConnection, timeout: float = 10.0) -> int:
    """Read until the server closes the socket; its close code."""
    with pytest.raises(websockets.ConnectionClosed) as info:
        async with asyncio.timeout(timeout):
            while True:
                await conn.recv()
    assert info.value.rcvd is not None, "closed without a close frame"
    return info.value.rcvd.code


async def subscribe(conn: websockets.ClientConnection, *channels: str, **extra: str) -> None:
    await conn.send(json.dumps({"op": "subscribe", "ref": "s", "channels": channels, **extra}))
    ok = await ws_recv(conn)
    assert ok["op"] == "ok" and ok["ref"] == "s", ok


async def test_an_expired_token_closes_with_1008(gateway: Gateway, make_token: TokenMaker) -> None:
    async with ws(gateway.base_url, make_token(subscribe=[">"], ttl=2)) as conn:
        await subscribe(conn, "e")
        assert await closed_with(conn) == 1008


async def test_shutdown_closes_with_1012(gateway: Gateway, make_token: TokenMaker) -> None:
    async with ws(gateway.base_url, make_token(subscribe=[">"])) as conn:
        await subscribe(conn, "bye")
        gateway.kill(signal.SIGTERM)
        assert await closed_with(conn) == 1012


async def test_a_slow_consumer_is_closed_with_1013(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    gw = gateway_factory(NOTIFY_MAX_QUEUED="5", NOTIFY_SEND_TIMEOUT_SECONDS="60")
    token = make_token(publish=[">"], subscribe=[">"])
    url = gw.base_url.replace("http://", "ws://") + f"/v1/ws?token={token}"
    # the client keeps one frame and stops reading the socket: TCP fills, the queue grows
    async with websockets.connect(url, open_timeout=5, max_queue=1) as conn:
        await subscribe(conn, "flood")
        big = "x" * 60_000
        for _ in range(20):
            await asyncio.to_thread(
                publish_batch,
                gw.base_url,
                token,
                [{"channel": "flood", "type": "t", "data": big} for _ in range(10)],
            )
        assert await closed_with(conn, timeout=20) == 1013


async def test_a_cursor_older_than_history_gets_a_gap_frame(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    gw = gateway_factory(NOTIFY_CHANNEL_HISTORY_MAX_EVENTS="10")
    token = make_token(publish=[">"], subscribe=[">"])
    ids: list[str] = []
    for _ in range(3):  # Redis trims whole stream nodes (100 entries): go past a few
        ids += await asyncio.to_thread(
            publish_batch,
            gw.base_url,
            token,
            [{"channel": "busy", "type": "t", "data": i} for i in range(150)],
        )
    async with ws(gw.base_url, token) as conn:
        await subscribe(conn, "busy", last_event_id=ids[0])
        assert await ws_recv(conn) == {"op": "gap", "reason": "history_expired"}
        first = await ws_recv(conn)
        assert first["op"] == "event" and first["event"]["id"] in ids[100:]
    # a cursor still inside the history resumes without a gap
    async with ws(gw.base_url, token) as conn:
        await subscribe(conn, "busy", last_event_id=ids[-3])
        got = [(await ws_recv(conn))["event"]["id"] for _ in range(2)]
        assert got == ids[-2:]
