"""A stream's first frame is its position, so a client cut before its first event
(a slow consumer cut on a burst, a proxy reset) resumes from the moment it connected."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest

from tests.integration.clients import publish, publish_batch, sse, ws, ws_recv
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import Gateway
from tests.support.streamers import StreamClient

pytestmark = pytest.mark.asyncio

BURST = 2000
BLOB = "x" * 8000  # with its envelope, an event of about 8 KB
PER_BATCH = 250


async def until(what: str, done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_sse_first_frame_is_the_position_and_nothing_fires(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(publish=["pos.>"], subscribe=["pos.>"])
    before = await asyncio.to_thread(publish, gateway.base_url, token, "pos.a")
    async with (
        httpx.AsyncClient(base_url=gateway.base_url, trust_env=False) as client,
        client.stream("GET", "/v1/stream", params={"channel": "pos.a", "token": token}) as r,
    ):
        first = await anext(r.aiter_raw())
    # the log head when it opened: nothing after it had been published yet
    assert first == f"retry: 3000\nid: {before}\n\n".encode()
    async with sse(gateway.base_url, ["pos.a"], token, last_event_id="1-0") as s:
        assert await s.position() == "1-0"  # opened with a cursor: that cursor


async def test_sse_cut_after_the_position_frame_resumes_exactly_what_it_missed(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(publish=["pos.>"], subscribe=["pos.>"])
    async with sse(gateway.base_url, ["pos.b.*"], token) as s:
        position = await s.position()
    missed = await asyncio.to_thread(
        publish_batch,
        gateway.base_url,
        token,
        [{"channel": c, "type": "t", "data": i} for i, c in enumerate(["pos.b.1", "pos.b.2"])],
    )
    missed.append(await asyncio.to_thread(publish, gateway.base_url, token, "pos.b.3"))
    async with sse(gateway.base_url, ["pos.b.*"], token, last_event_id=position) as again:
        assert await again.position() == position
        assert [f.id for f in await again.events(3)] == missed
        marker = await asyncio.to_thread(publish, gateway.base_url, token, "pos.b.end")
        assert (await again.next()).id == marker  # and nothing else before it


async def test_ws_subscribe_ok_carries_the_position_to_resume_from(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(publish=["pos.>"], subscribe=["pos.>"])
    async with ws(gateway.base_url, token) as conn:
        await conn.send(json.dumps({"op": "subscribe", "ref": "1", "channels": ["pos.w.>"]}))
        ok = await ws_recv(conn)
    assert ok["op"] == "ok" and ok["ref"] == "1"
    position = ok["position"]
    missed = [
        await asyncio.to_thread(publish, gateway.base_url, token, f"pos.w.{i}") for i in range(3)
    ]
    async with ws(gateway.base_url, token) as conn:
        frame = {"op": "subscribe", "ref": "2", "channels": ["pos.w.>"], "last_event_id": position}
        await conn.send(json.dumps(frame))
        assert await ws_recv(conn) == {"op": "ok", "ref": "2", "position": position}
        got = [(await ws_recv(conn))["event"]["id"] for _ in range(3)]
        assert got == missed
        marker = await asyncio.to_thread(publish, gateway.base_url, token, "pos.w.end")
        assert (await ws_recv(conn))["event"]["id"] == marker


async def test_feed_starts_with_its_position(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token(sub="posfeed")
    head = await asyncio.to_thread(publish, gateway.base_url, make_token(publish=[">"]), "x")
    async with (
        httpx.AsyncClient(base_url=gateway.base_url, trust_env=False) as client,
        client.stream("GET", "/v1/feed", params={"token": token}) as r,
    ):
        assert await anext(r.aiter_raw()) == f"retry: 3000\nid: {head}\n\n".encode()


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_burst_cuts_a_small_buffer_client_and_it_loses_nothing(
    gateway_factory: GatewayFactory, make_token: TokenMaker, transport: str
) -> None:
    """The reported case: a client with a small receive buffer, connected before a
    burst of 2,000 events of 8 KB with NOTIFY_MAX_QUEUED=50, is cut before it has
    read any event; it reconnects from its position and gets every event once."""
    gw = gateway_factory(NOTIFY_MAX_QUEUED="50")
    token = make_token(publish=["burst"], subscribe=["burst"])
    client = StreamClient(
        "c",
        transport,
        [f"127.0.0.1:{gw.port}"],
        ["burst"],
        token,
        small_buffer=True,  # type: ignore[arg-type]
    )
    running = asyncio.create_task(client.run())
    try:
        await until("the stream to open", lambda: client.stats.position is not None)
        ids: list[str] = []
        for _ in range(BURST // PER_BATCH):
            # a batch is stored at once, so the hub hands this connection far more than
            # 50 events in one go: it is cut before anything after its position is written
            ids += await asyncio.to_thread(
                publish_batch,
                gw.base_url,
                token,
                [{"channel": "burst", "type": "t", "data": BLOB}] * PER_BATCH,
            )
        await until("every event", lambda: len(client.stats.ids) >= len(ids), timeout=60)
        assert client.stats.received_at_drops[0] == 0  # cut before its first event
        assert client.stats.ids == ids  # every event, once, in order
    finally:
        client.stop()
        await running
