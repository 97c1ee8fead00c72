"""SSE streams against a real gateway process and a real redis-server."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.integration.clients import publish, publish_batch, sse
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import Gateway

pytestmark = pytest.mark.asyncio


async def test_publish_reaches_exact_and_pattern_streams_in_spec_framing(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(publish=["orders.>"], subscribe=["orders.>"])
    async with (
        sse(gateway.base_url, ["orders.eu"], token) as exact,
        sse(gateway.base_url, ["orders.*"], token) as pattern,
    ):
        assert exact.response.headers["content-type"].startswith("text/event-stream")
        assert exact.response.headers["cache-control"] == "no-cache"
        assert exact.response.headers["x-accel-buffering"] == "no"
        event_id = await asyncio.to_thread(
            publish, gateway.base_url, token, "orders.eu", "order.created", {"order": 17}
        )
        for stream in (exact, pattern):
            frame = await stream.next()
            assert stream.retry == 3000
            assert frame.event is None  # onmessage receives ordinary events
            assert frame.id == event_id
            body = frame.json
            assert body["id"] == event_id
            assert body["channel"] == "orders.eu"
            assert body["type"] == "order.created"
            assert body["data"] == {"order": 17}
            assert body["time"].endswith("Z") and len(body["time"]) == 24


async def test_raw_wire_bytes(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token(publish=["a"], subscribe=["a"])
    params = {"channel": "a", "token": token}
    async with (
        httpx.AsyncClient(base_url=gateway.base_url, trust_env=False) as client,
        client.stream("GET", "/v1/stream", params=params) as r,
    ):
        chunks = r.aiter_raw()
        first = await anext(chunks)
        assert re.match(rb"retry: 3000\nid: [0-9]+-[0-9]+\n\n", first)
        event_id = await asyncio.to_thread(publish, gateway.base_url, token, "a", "t", [1])
        raw = first[first.index(b"\n\n") + 2 :]
        while b"\n\n" not in raw:
            raw += await anext(chunks)
    head, data = raw.split(b"\n", 1)
    assert head == f"id: {event_id}".encode()
    assert data.startswith(b'data: {"id":"' + event_id.encode() + b'","channel":"a","type":"t"')
    assert data.endswith(b"}\n\n") and data.count(b"\n") == 2


async def test_patterns_star_and_tail(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    async with (
        sse(gateway.base_url, ["orders.*"], token) as star,
        sse(gateway.base_url, ["orders.>"], token) as tail,
    ):
        ids = await asyncio.to_thread(
            publish_batch,
            gateway.base_url,
            token,
            [
                {"channel": "orders", "type": "t", "data": 0},
                {"channel": "orders.eu", "type": "t", "data": 1},
                {"channel": "orders.eu.x", "type": "t", "data": 2},
                {"channel": "other.eu", "type": "t", "data": 3},
            ],
        )
        assert [f.id for f in await star.events(1)] == [ids[1]]
        assert [f.id for f in await tail.events(2)] == [ids[1], ids[2]]
        marker = await asyncio.to_thread(publish, gateway.base_url, token, "orders.end")
        assert (await star.next()).id == marker  # nothing else arrived before it


async def test_one_stream_carries_many_channels_once(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    async with sse(gateway.base_url, ["a.b", "a.*", "a.>"], token) as s:
        first = await asyncio.to_thread(publish, gateway.base_url, token, "a.b")
        second = await asyncio.to_thread(publish, gateway.base_url, token, "a.c")
        assert [f.id for f in await s.events(2)] == [first, second]


@pytest.mark.parametrize("how", ["header", "query"])
async def test_resume_after_disconnect_no_gap_no_duplicate(
    gateway: Gateway, make_token: TokenMaker, how: str
) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    channels = ["docs.42", "chat.*"]
    async with sse(gateway.base_url, channels, token) as s:
        before = await asyncio.to_thread(
            publish_batch,
            gateway.base_url,
            token,
            [
                {"channel": "docs.42" if i % 2 else "chat.x", "type": "t", "data": i}
                for i in range(6)
            ],
        )
        seen = [f.id for f in await s.events(3)]
    missed = await asyncio.to_thread(
        publish_batch,
        gateway.base_url,
        token,
        [
            {"channel": c, "type": "t", "data": c}
            for c in ["docs.42", "chat.y", "unrelated", "docs.43", "chat.z"]
        ],
    )
    cursor = seen[-1]
    kwargs = {"last_event_id": cursor} if how == "header" else {"params": {"last_event_id": cursor}}
    async with sse(gateway.base_url, channels, token, **kwargs) as s:  # type: ignore[arg-type]
        live = await asyncio.to_thread(publish, gateway.base_url, token, "chat.live")
        expected = [*before[3:], missed[0], missed[1], missed[4], live]
        got = [f.id for f in await s.events(len(expected))]
        assert got == expected


async def test_resume_with_unknown_cursor_says_gap(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    first = await asyncio.to_thread(publish, gateway.base_url, token, "x")
    async with sse(gateway.base_url, ["x"], token, last_event_id="99999999999999-0") as s:
        gap = await s.next()
        assert gap.event == "gap"
        assert gap.json == {"reason": "unknown_cursor"}
        assert (await s.next()).id == first


async def test_gap_when_cursor_older_than_history(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    gw = gateway_factory(NOTIFY_CHANNEL_HISTORY_MAX_EVENTS="10")
    token = make_token(publish=[">"], subscribe=[">"])
    ids: list[str] = []
    for _ in range(4):  # Redis trims whole stream nodes (100 entries), so go past a few
        ids += await asyncio.to_thread(
            publish_batch,
            gw.base_url,
            token,
            [{"channel": "busy", "type": "t", "data": i} for i in range(150)],
        )
    async with httpx.AsyncClient(base_url=gw.base_url, trust_env=False) as client:
        r = await client.get(
            "/v1/events",
            params={"channel": "busy", "limit": 1000},
            headers={"Authorization": f"Bearer {token}"},
        )
        kept = r.json()["events"]
        oldest_kept = kept[0]["id"]
    assert oldest_kept != ids[0]
    assert len(kept) <= 10 + 100  # the cap, plus at most one stream node
    async with sse(gw.base_url, ["busy"], token, last_event_id=ids[0]) as s:
        gap = await s.next()
        assert gap.event == "gap" and gap.json == {"reason": "history_expired"}
        assert (await s.next()).id == oldest_kept
    # a cursor still inside history resumes without a gap frame
    async with sse(gw.base_url, ["busy"], token, last_event_id=ids[-3]) as s:
        assert [f.id for f in await s.events(2)] == ids[-2:]


async def test_origin_suppression(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    async with sse(gateway.base_url, ["room"], token, params={"origin": "tab-1"}) as s:
        await asyncio.to_thread(publish, gateway.base_url, token, "room", "t", 1, origin="tab-1")
        other = await asyncio.to_thread(
            publish, gateway.base_url, token, "room", "t", 2, origin="tab-2"
        )
        frame = await s.next()
        assert frame.id == other and frame.json["origin"] == "tab-2"


async def test_keepalive_comment(gateway_factory: GatewayFactory, make_token: TokenMaker) -> None:
    gw = gateway_factory(NOTIFY_KEEPALIVE_SECONDS="0.3")
    token = make_token(subscribe=["k"])
    async with sse(gw.base_url, ["k"], token) as s:
        with pytest.raises(TimeoutError):
            await s.next(timeout=1.0)
        assert ": keepalive" in s.comments


async def test_two_gateways_share_one_redis(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    a, b = gateway_factory(), gateway_factory()
    token = make_token(publish=[">"], subscribe=[">"])
    async with (
        sse(a.base_url, ["shared"], token) as on_a,
        sse(b.base_url, ["shared"], token) as on_b,
    ):
        via_b = await asyncio.to_thread(publish, b.base_url, token, "shared", "t", "b")
        via_a = await asyncio.to_thread(publish, a.base_url, token, "shared", "t", "a")
        assert [f.id for f in await on_a.events(2)] == [via_b, via_a]
        assert [f.id for f in await on_b.events(2)] == [via_b, via_a]


async def test_odd_but_valid_names_and_unicode_survive_the_round_trip(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    channel = "a:1@b-c_d.9:9"
    async with sse(gateway.base_url, [channel, "a:1@b-c_d.*"], token) as s:
        event_id = await asyncio.to_thread(
            publish,
            gateway.base_url,
            token,
            channel,
            "x:y.z-1_2",
            {"€": "ü:\n"},
            origin="tab-é:1",
        )
        frame = await s.next()
    assert frame.id == event_id
    assert frame.json["channel"] == channel and frame.json["type"] == "x:y.z-1_2"
    assert frame.json["data"] == {"€": "ü:\n"} and frame.json["origin"] == "tab-é:1"
