"""The WebSocket transport against a real gateway."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.typing import Origin

from tests.integration.clients import publish, publish_batch, ws, ws_recv
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import Gateway
from tests.support.redis import RedisServer

pytestmark = pytest.mark.asyncio


async def test_subscribe_receive_unsubscribe(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token(publish=[">"], subscribe=["orders.>"])
    async with ws(gateway.base_url, token) as conn:
        await conn.send(json.dumps({"op": "subscribe", "ref": "1", "channels": ["orders.*"]}))
        ok = await ws_recv(conn)
        assert ok.keys() == {"op", "ref", "position"} and ok["ref"] == "1"
        event_id = await asyncio.to_thread(publish, gateway.base_url, token, "orders.eu", "t", 7)
        message = await ws_recv(conn)
        assert message["op"] == "event"
        assert message["event"]["id"] == event_id and message["event"]["data"] == 7
        await conn.send(json.dumps({"op": "unsubscribe", "ref": "2", "channels": ["orders.*"]}))
        assert await ws_recv(conn) == {"op": "ok", "ref": "2"}
        await asyncio.to_thread(publish, gateway.base_url, token, "orders.eu", "t", 8)
        await conn.send(json.dumps({"op": "ping", "ref": "3"}))
        assert await ws_recv(conn) == {"op": "pong", "ref": "3"}


async def test_publish_on_socket_is_not_echoed(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    async with ws(gateway.base_url, token) as mine, ws(gateway.base_url, token) as theirs:
        for conn in (mine, theirs):
            await conn.send(json.dumps({"op": "subscribe", "ref": 1, "channels": ["room"]}))
            assert (await ws_recv(conn))["op"] == "ok"
        await mine.send(
            json.dumps(
                {"op": "publish", "ref": "p", "channel": "room", "type": "t", "data": {"x": 1}}
            )
        )
        ack = await ws_recv(mine)
        assert ack["op"] == "ok" and ack["ref"] == "p" and ack["id"]
        got = await ws_recv(theirs)
        assert got["event"]["id"] == ack["id"] and got["event"]["data"] == {"x": 1}
        await mine.send(json.dumps({"op": "ping", "ref": "after"}))
        assert await ws_recv(mine) == {"op": "pong", "ref": "after"}  # and no echo before it


async def test_a_cloudevent_published_on_a_socket(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token(publish=["room.>"], subscribe=[">"])
    event = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "//sensor/4",
        "type": "reading.taken",
        "channel": "room.4",
        "unit": "C",
        "data": {"t": 21.5},
    }
    async with ws(gateway.base_url, token) as mine, ws(gateway.base_url, token) as theirs:
        for conn in (mine, theirs):
            await conn.send(json.dumps({"op": "subscribe", "ref": 1, "channels": ["room.>"]}))
            assert (await ws_recv(conn))["op"] == "ok"
        await mine.send(json.dumps({"op": "publish", "ref": "c", "cloudevent": event}))
        ack = await ws_recv(mine)
        assert ack["op"] == "ok" and ack["ref"] == "c" and ack["id"]
        got = (await ws_recv(theirs))["event"]
        assert (got["id"], got["channel"], got["type"]) == (ack["id"], "room.4", "reading.taken")
        assert got["data"] == {"t": 21.5} and got["ce"]["unit"] == "C"
        # source + id deduplicate, as on the HTTP endpoints
        await mine.send(json.dumps({"op": "publish", "ref": "again", "cloudevent": event}))
        assert (await ws_recv(mine))["id"] == ack["id"]
        bad = [
            ({k: v for k, v in event.items() if k != "source"}, {}, "cloudevent.source"),
            ({**event, "id": "e-2", "channel": "other"}, {}, "channel"),
            (event, {"type": "x"}, "cloudevent"),
        ]
        for n, (ce, extra, field) in enumerate(bad):
            await mine.send(json.dumps({"op": "publish", "ref": n, "cloudevent": ce, **extra}))
            answer = await ws_recv(mine)
            assert answer["op"] == "error" and answer["ref"] == n, answer
            assert answer["status"] in (403, 422) and answer.get("field") == field, answer
        await mine.send(json.dumps({"op": "ping", "ref": "after"}))
        assert await ws_recv(mine) == {"op": "pong", "ref": "after"}  # no echo, nothing else


async def test_resume_on_subscribe(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    ids = await asyncio.to_thread(
        publish_batch,
        gateway.base_url,
        token,
        [{"channel": "r.1" if i % 2 else "r.2", "type": "t", "data": i} for i in range(6)],
    )
    async with ws(gateway.base_url, token) as conn:
        await conn.send(
            json.dumps({"op": "subscribe", "ref": 1, "channels": ["r.1"], "last_event_id": ids[1]})
        )
        assert (await ws_recv(conn))["op"] == "ok"
        live = await asyncio.to_thread(publish, gateway.base_url, token, "r.1")
        got = [(await ws_recv(conn))["event"]["id"] for _ in range(3)]
        assert got == [ids[3], ids[5], live]


async def test_a_cursor_restarts_a_channel_the_socket_already_follows(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    before = await asyncio.to_thread(
        publish_batch,
        gateway.base_url,
        token,
        [{"channel": "re", "type": "t", "data": i} for i in range(3)],
    )
    async with ws(gateway.base_url, token) as conn:
        await conn.send(json.dumps({"op": "subscribe", "ref": 1, "channels": ["re"]}))
        assert await ws_recv(conn) == {"op": "ok", "ref": 1, "position": before[-1]}
        first = await asyncio.to_thread(publish, gateway.base_url, token, "re")
        assert (await ws_recv(conn))["event"]["id"] == first
        # the same channel again, from an id: everything after it, in order, then live
        # once (the socket already had `first`; the client asked for it again)
        frame = {"op": "subscribe", "ref": 2, "channels": ["re"], "last_event_id": before[0]}
        await conn.send(json.dumps(frame))
        assert await ws_recv(conn) == {"op": "ok", "ref": 2, "position": before[0]}
        replayed = [(await ws_recv(conn))["event"]["id"] for _ in range(3)]
        assert replayed == [before[1], before[2], first]
        live = await asyncio.to_thread(publish, gateway.base_url, token, "re")
        assert (await ws_recv(conn))["event"]["id"] == live
        # without a cursor, a repeat subscribe changes nothing
        await conn.send(json.dumps({"op": "subscribe", "ref": 3, "channels": ["re"]}))
        assert await ws_recv(conn) == {"op": "ok", "ref": 3, "position": live}
        await conn.send(json.dumps({"op": "ping", "ref": 4}))
        assert await ws_recv(conn) == {"op": "pong", "ref": 4}


async def test_errors_keep_socket_open_and_garbage_closes_it(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(publish=["mine"], subscribe=["mine"])
    async with ws(gateway.base_url, token) as conn:
        cases = [
            ("not json", None, 422),
            (json.dumps([1]), None, 422),
            (json.dumps({"op": "fly", "ref": "a"}), "a", 422),
            (json.dumps({"op": "subscribe", "ref": "b", "channels": "x"}), "b", 422),
            (json.dumps({"op": "subscribe", "ref": "c", "channels": ["a..b"]}), "c", 422),
            (json.dumps({"op": "subscribe", "ref": "d", "channels": ["secret"]}), "d", 403),
            (
                json.dumps(
                    {"op": "subscribe", "ref": "e", "channels": ["mine"], "last_event_id": "nope"}
                ),
                "e",
                400,
            ),
            (
                json.dumps(
                    {"op": "publish", "ref": "f", "channel": "other", "type": "t", "data": 1}
                ),
                "f",
                403,
            ),
            (json.dumps({"op": "publish", "ref": "g", "channel": "mine", "type": "t"}), "g", 422),
            # an integer that JSON parsing would round: refused, never stored altered
            (
                json.dumps(
                    {"op": "publish", "ref": "h", "channel": "mine", "type": "t", "data": 10**30}
                ),
                None,
                422,
            ),
        ]
        for text, ref, status in cases:
            await conn.send(text)
            reply = await ws_recv(conn)
            assert reply["op"] == "error" and reply["ref"] == ref and reply["status"] == status
            assert reply["detail"]
        await conn.send(b"\x00binary")
        assert (await ws_recv(conn))["status"] == 422
        await conn.send(json.dumps({"op": "ping", "ref": "alive"}))
        assert await ws_recv(conn) == {"op": "pong", "ref": "alive"}
        for _ in range(10):
            await conn.send("garbage")
        with pytest.raises(websockets.ConnectionClosed) as info:
            for _ in range(11):
                await ws_recv(conn)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008


async def test_bad_token_is_refused_and_logged_as_a_refusal_not_an_error(
    gateway: Gateway,
) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with ws(gateway.base_url, "bad-token"):
            pass
    assert info.value.response.status_code == 401
    assert info.value.response.headers["content-type"] == "application/problem+json"
    assert json.loads(info.value.response.body)["status"] == 401
    await asyncio.sleep(0.3)
    text = gateway.log_text()
    assert '"WebSocket /v1/ws?token=[redacted]" 401' in text
    # a bad token is the client's fault: nothing at ERROR, no 500 after the 401
    assert "ERROR" not in text and "without completing handshake" not in text


async def test_origin_is_checked_against_the_cors_list(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    gw = gateway_factory(NOTIFY_CORS_ORIGINS="https://app.example")
    token = make_token(subscribe=[">"])
    url = gw.base_url.replace("http://", "ws://") + f"/v1/ws?token={token}"
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(url, origin=Origin("https://evil.example")):
            pass
    assert info.value.response.status_code == 403
    async with websockets.connect(url, origin=Origin("https://app.example")) as conn:
        await conn.send(json.dumps({"op": "ping", "ref": 1}))
        assert await ws_recv(conn) == {"op": "pong", "ref": 1}
    async with httpx.AsyncClient(base_url=gw.base_url, trust_env=False) as client:
        allowed = await client.get("/healthz", headers={"Origin": "https://app.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        other = await client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    assert "ERROR" not in gw.log_text()  # the refused origin was not a server fault


async def test_without_a_cors_list_only_the_gateways_own_origin_may_open_a_socket(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    """A cookie-authenticated socket opened by another site's page must fail."""
    token = make_token(subscribe=[">"])
    url = gateway.base_url.replace("http://", "ws://") + "/v1/ws"
    cookie = {"Cookie": f"notify_token={token}"}
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(
            url, origin=Origin("https://evil.example"), additional_headers=cookie
        ):
            pass
    assert info.value.response.status_code == 403
    for origin in (Origin(gateway.base_url), None):  # same origin, or not a browser
        async with websockets.connect(url, origin=origin, additional_headers=cookie) as conn:
            await conn.send(json.dumps({"op": "ping", "ref": 1}))
            assert await ws_recv(conn) == {"op": "pong", "ref": 1}


async def test_query_tokens_and_secrets_never_reach_the_log(
    redis_server: RedisServer, make_token: TokenMaker, jwt_secret: str, tmp_path: Path
) -> None:
    # with uvicorn's access log on, as `notify serve --access-log` turns it on: its
    # request lines carry the query string, token too
    gateway = Gateway(
        redis_url=redis_server.url,
        jwt_secret=jwt_secret,
        directory=tmp_path,
        serve_args=("--access-log",),
    ).start()
    try:
        token = make_token(subscribe=[">"])
        async with ws(gateway.base_url, token) as conn:
            await conn.send(json.dumps({"op": "ping", "ref": 1}))
            await ws_recv(conn)
        # values not shaped like a JWT: notify/logs.py masks JWT-shaped text anywhere, so
        # only the query redaction (notify/redact.py) keeps these out
        opaque = "opaque-" + secrets.token_hex(8)
        with pytest.raises(websockets.InvalidStatus):
            async with ws(gateway.base_url, opaque + "-ws"):
                pass
        async with httpx.AsyncClient(base_url=gateway.base_url, trust_env=False) as client:
            await client.get("/v1/events", params={"channel": "x", "token": token})
            await client.get(f"/v1/events?channel=x&%74oken={opaque}-a&access_token={opaque}-b")
        lines = (
            "GET /v1/events?channel=x&token=[redacted] HTTP/1.1",
            "GET /v1/events?channel=x&%74oken=[redacted]&access_token=[redacted] HTTP/1.1",
            '"WebSocket /v1/ws?token=[redacted]" 401',
        )
        deadline = time.monotonic() + 5
        while not all(line in (text := gateway.log_text()) for line in lines):  # logged
            assert time.monotonic() < deadline, text[-2000:]
            await asyncio.sleep(0.05)
        assert opaque not in text  # the values are not
        assert token not in text and token.split(".")[2] not in text
        assert jwt_secret not in text
    finally:
        gateway.kill()


async def test_an_oversized_frame_closes_only_that_socket(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    async with ws(gateway.base_url, token) as bystander, ws(gateway.base_url, token) as bad:
        # just over the 1 MiB cap: the whole frame fits in the loopback buffers, so the
        # send completes before the gateway closes (a close with unread data is a reset)
        await bad.send("x" * (1024 * 1024 + 1024))
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws_recv(bad)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        await bystander.send(json.dumps({"op": "ping", "ref": "ok"}))
        assert await ws_recv(bystander) == {"op": "pong", "ref": "ok"}
