"""``NOTIFY_CORS_ALLOW_LOOPBACK`` against a real gateway: a page served from another
local port (a dev server) is treated as if listed in ``NOTIFY_CORS_ORIGINS`` by CORS
(middleware and fast path alike), the WebSocket ``Origin`` check and the cookie
check; a look-alike name is not; without the flag nothing changes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.typing import Origin

from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import Gateway

EVENT = {"channel": "dev.x", "type": "t", "data": 1}
LOOKALIKES = ("http://localhost.evil.com:5173", "http://127.0.0.1.nip.io", "null")


def local_origins(gw: Gateway) -> list[str]:
    """Loopback origins of pages on another port than the gateway's."""
    other = gw.port + 1 if gw.port < 65535 else gw.port - 1
    return [f"http://127.0.0.1:{other}", f"http://localhost:{other}", f"http://[::1]:{other}"]


@pytest.fixture
def alice(make_token: TokenMaker) -> str:
    return make_token("alice", publish=[">"], subscribe=[">"])


def http(gw: Gateway, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=gw.base_url, trust_env=False, timeout=10, **kwargs)


def preflight(c: httpx.Client, origin: str) -> httpx.Response:
    return c.options(
        "/v1/events",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def cors_answers(gw: Gateway, origin: str, token: str) -> dict[str, str | None]:
    """``access-control-allow-origin`` of a preflight and of GETs and a publish served by
    the FastAPI routes (history) and by the fast path (stream, publish)."""
    answers: dict[str, str | None] = {}
    bearer = {"Authorization": f"Bearer {token}", "Origin": origin}
    with http(gw) as c:
        answers["preflight"] = preflight(c, origin).headers.get("access-control-allow-origin")
        r = c.get("/v1/events", params={"channel": "dev.x"}, headers=bearer)
        assert r.status_code == 200, r.text
        answers["history"] = r.headers.get("access-control-allow-origin")
        with c.stream("GET", "/v1/stream", params={"channel": "dev.x"}, headers=bearer) as r:
            assert r.status_code == 200
            answers["stream"] = r.headers.get("access-control-allow-origin")
        r = c.post("/v1/events", json=EVENT, headers=bearer)
        assert r.status_code == 202, r.text
        answers["publish"] = r.headers.get("access-control-allow-origin")
    return answers


async def ws_status(gw: Gateway, origin: str, token: str, *, cookie: bool) -> int:
    """The handshake's answer (101 when the socket opened and answered a ping)."""
    url = gw.base_url.replace("http://", "ws://") + "/v1/ws"
    headers = {"Cookie": f"notify_token={token}"} if cookie else {}
    if not cookie:
        url += f"?token={token}"
    try:
        connecting = websockets.connect(url, origin=Origin(origin), additional_headers=headers)
        async with connecting as conn:
            await conn.send(json.dumps({"op": "ping", "ref": "o"}))
            assert json.loads(await conn.recv()) == {"op": "pong", "ref": "o"}
            return 101
    except websockets.InvalidStatus as exc:
        return exc.response.status_code


def cookie_write(gw: Gateway, origin: str, token: str) -> list[int]:
    """Statuses of a cookie-authenticated publish (fast path) and subscription (route)."""
    headers = {"Origin": origin}
    with http(gw, cookies={"notify_token": token}) as c:
        published = c.post("/v1/events", json=EVENT, headers=headers)
        subscribed = c.post(
            "/v1/subscriptions", json={"channel": "dev.>", "sink": {"kind": "web"}}, headers=headers
        )
    return [published.status_code, subscribed.status_code]


async def test_with_the_flag_loopback_pages_are_allowed_everywhere(
    gateway_factory: GatewayFactory, alice: str
) -> None:
    gw = gateway_factory(NOTIFY_CORS_ALLOW_LOOPBACK="true")
    for origin in local_origins(gw):
        answers = cors_answers(gw, origin, alice)
        assert answers == dict.fromkeys(answers, origin), (origin, answers)
        assert await ws_status(gw, origin, alice, cookie=False) == 101, origin
        assert await ws_status(gw, origin, alice, cookie=True) == 101, origin
    with http(gw) as c:
        r = preflight(c, local_origins(gw)[0])
        assert r.status_code == 200 and r.headers["access-control-allow-credentials"] == "true"
    # the cookie check: the write goes through and is stored
    assert cookie_write(gw, local_origins(gw)[0], alice) == [202, 201]
    with http(gw, headers={"Authorization": f"Bearer {alice}"}) as c:
        assert len(c.get("/v1/subscriptions").json()["subscriptions"]) == 1


async def test_with_the_flag_lookalikes_are_still_refused(
    gateway_factory: GatewayFactory, alice: str
) -> None:
    gw = gateway_factory(NOTIFY_CORS_ALLOW_LOOPBACK="true")
    with http(gw, headers={"Authorization": f"Bearer {alice}"}) as c:
        before = c.get("/v1/events", params={"channel": ">"}).json()["events"]
    for origin in (*LOOKALIKES, "https://evil.example"):
        assert set(cors_answers(gw, origin, alice).values()) == {None}, origin
        with http(gw) as c:
            assert preflight(c, origin).status_code == 400  # "Disallowed CORS origin"
        assert await ws_status(gw, origin, alice, cookie=False) == 403, origin
        assert await ws_status(gw, origin, alice, cookie=True) == 403, origin
        assert cookie_write(gw, origin, alice) == [403, 403], origin
    with http(gw, headers={"Authorization": f"Bearer {alice}"}) as c:
        after = c.get("/v1/events", params={"channel": ">"}).json()["events"]
        assert c.get("/v1/subscriptions").json()["subscriptions"] == []
    assert len(after) == len(before) + 4  # only the bearer publishes of cors_answers


async def test_without_the_flag_other_loopback_ports_are_refused_as_before(
    gateway_factory: GatewayFactory, alice: str
) -> None:
    gw = gateway_factory(NOTIFY_CORS_ORIGINS="https://app.example")
    for origin in local_origins(gw):
        assert set(cors_answers(gw, origin, alice).values()) == {None}, origin
        assert await ws_status(gw, origin, alice, cookie=False) == 403, origin
        assert await ws_status(gw, origin, alice, cookie=True) == 403, origin
        assert cookie_write(gw, origin, alice) == [403, 403], origin
    # the gateway's own origin and the listed one are unaffected
    assert await ws_status(gw, gw.base_url, alice, cookie=True) == 101
    assert cookie_write(gw, gw.base_url, alice) == [202, 201]
    assert cors_answers(gw, "https://app.example", alice)["stream"] == "https://app.example"
