"""A stream's first frame is its position, so a client cut before its first event
(a slow consumer cut on a burst, a proxy reset) resumes from the moment it connected."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest

from notify.publisher import Publisher
from tests.integration.clients import publish, publish_batch, sse, ws, ws_recv
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import Gateway
from tests.support.redis import RedisServer
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


async def test_a_wildcard_catch_up_over_a_large_log_continues_in_bounded_requests(
    redis_server: RedisServer, gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    """No one request reads the whole log: a resume that spent its scan budget ends
    with the position it reached (an ``id:`` without data), and the client's next
    request continues from there, losing nothing and repeating nothing."""
    gw = gateway_factory(NOTIFY_RESUME_SCAN_BUDGET="1000")
    token = make_token(subscribe=["w.>"])
    noise = [{"channel": "noise", "type": "t", "data": 0}] * 1000
    with Publisher(redis_server.url) as producer:
        start = producer.publish("start", "t", 0)
        wanted = []
        for part in range(2):
            for _ in range(25):
                producer.publish_many(noise)
            wanted.append(producer.publish(f"w.{part}", "t", part))
    got: list[str] = []
    cursor = start
    requests = 0
    while len(got) < len(wanted) and requests < 10:
        requests += 1
        async with sse(gw.base_url, ["w.>"], token, last_event_id=cursor) as s:
            assert await s.position() == cursor
            frames = (
                await s.until_closed(timeout=5)
                if requests < 3
                else await s.events(len(wanted) - len(got))
            )
            got += [f.id for f in frames if f.id is not None]
            cursor = s.last_id or cursor
    assert got == wanted
    assert requests == 3  # 51,000 entries in pages of 20,000, each request one page


async def test_a_wildcard_ws_catch_up_continues_from_the_position_it_reached(
    redis_server: RedisServer, gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    gw = gateway_factory(NOTIFY_RESUME_SCAN_BUDGET="1000")
    token = make_token(subscribe=["w.>"])
    noise = [{"channel": "noise", "type": "t", "data": 0}] * 1000
    with Publisher(redis_server.url) as producer:
        cursor = producer.publish("start", "t", 0)
        wanted = []
        for part in range(2):
            for _ in range(25):
                producer.publish_many(noise)
            wanted.append(producer.publish(f"w.{part}", "t", part))
    got: list[str] = []
    continued = 0
    async with ws(gw.base_url, token) as conn:
        frame = {"op": "subscribe", "ref": "s", "channels": ["w.>"], "last_event_id": cursor}
        await conn.send(json.dumps(frame))
        assert (await ws_recv(conn))["op"] == "ok"
        while len(got) < len(wanted):
            message = await ws_recv(conn, timeout=10)
            if message["op"] == "event":
                got.append(message["event"]["id"])
            else:
                assert message["op"] == "error" and message["status"] == 503, message
                continued += 1
                await conn.send(json.dumps({**frame, "last_event_id": message["position"]}))
                assert (await ws_recv(conn))["op"] == "ok"
    assert got == wanted
    assert continued == 2
