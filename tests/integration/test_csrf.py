"""Cookie-authenticated writes against a real gateway: refused from a foreign origin or
without JSON, nothing changes; header and query tokens are unaffected."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.typing import Origin

from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import Gateway

APP = "https://app.example"
EVIL = "https://evil.example"
EVENT = b'{"channel":"csrf.x","type":"t","data":1}'


@pytest.fixture
def gw(gateway_factory: GatewayFactory) -> Gateway:
    return gateway_factory(NOTIFY_CORS_ORIGINS=f"{APP},*")  # `*` trusts no cookie


@pytest.fixture
def alice(make_token: TokenMaker) -> str:
    return make_token("alice", publish=[">"], subscribe=[">"])


def http(gw: Gateway, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=gw.base_url, trust_env=False, timeout=10, **kwargs)


def state(gw: Gateway, token: str) -> tuple[list[Any], list[Any]]:
    """Every event and every subscription alice can see, read with a header token."""
    with http(gw, headers={"Authorization": f"Bearer {token}"}) as c:
        events = c.get("/v1/events", params={"channel": ">"}).json()["events"]
        subs = c.get("/v1/subscriptions").json()
    return events, subs


def writes(sub_id: str) -> list[tuple[str, str, bytes]]:
    return [
        ("POST", "/v1/events", EVENT),
        ("POST", "/v1/events/batch", b'{"events":[' + EVENT + b"]}"),
        ("POST", "/v1/subscriptions", b'{"channel":"csrf.>","sink":{"kind":"web"}}'),
        ("PATCH", f"/v1/subscriptions/{sub_id}", b'{"channel":"csrf.y"}'),
        ("POST", f"/v1/subscriptions/{sub_id}/replay", b'{"after":"0-0"}'),
        ("DELETE", f"/v1/subscriptions/{sub_id}", b""),
    ]


def test_cookie_writes_need_a_trusted_origin_and_json(gw: Gateway, alice: str) -> None:
    with http(gw, headers={"Authorization": f"Bearer {alice}"}) as c:
        r = c.post(
            "/v1/subscriptions",
            json={"channel": "keep.>", "sink": {"kind": "email", "to": "a@example.com"}},
        )
        assert r.status_code == 201, r.text
        sub_id = r.json()["id"]
    before = state(gw, alice)
    refusals = [
        ({"Origin": EVIL, "Content-Type": "application/json"}, 403, "cross-origin"),
        ({"Origin": "null", "Content-Type": "application/json"}, 403, "cross-origin"),
        ({"Referer": EVIL + "/page", "Content-Type": "application/json"}, 403, "cross-origin"),
        ({"Content-Type": "application/json"}, 403, "cross-origin"),  # neither header
        ({"Origin": APP, "Content-Type": "text/plain"}, 415, "unsupported-media-type"),
        ({"Origin": APP}, 415, "unsupported-media-type"),
        ({"Referer": APP + "/x", "Content-Type": "text/plain"}, 415, "unsupported-media-type"),
    ]
    with http(gw, cookies={"notify_token": alice}) as c:
        for method, path, body in writes(sub_id):
            for headers, status, code in refusals:
                r = c.request(method, path, content=body, headers=headers)
                assert r.status_code == status, (method, path, headers, r.text)
                assert r.headers["content-type"] == "application/problem+json"
                assert r.json()["type"].endswith("/" + code), r.text
    assert state(gw, alice) == before  # nothing stored, nothing changed

    with http(gw, cookies={"notify_token": alice}) as c:
        ok = [202, 202, 201, 200, 202, 204]
        for (method, path, body), status in zip(writes(sub_id), ok, strict=True):
            for headers in (
                {"Origin": APP},
                {"Referer": gw.base_url + "/page"},  # the gateway's own origin
                {"Origin": gw.base_url},
            ):
                if method == "DELETE" and headers.get("Origin") != APP:
                    continue  # the first one deleted it
                r = c.request(
                    method,
                    path,
                    content=body,
                    headers={**headers, "Content-Type": "application/json; charset=utf-8"},
                )
                assert r.status_code == status, (method, path, headers, r.text)
    events, _ = state(gw, alice)
    assert len(events) == 6  # three single publishes and three batches of one


def test_header_and_query_tokens_are_unaffected(gw: Gateway, alice: str) -> None:
    with http(gw) as c:
        for auth in (
            {"headers": {"Authorization": f"Bearer {alice}"}},
            {"params": {"token": alice}},
        ):
            extra: dict[str, Any] = dict(auth)
            headers = {**extra.pop("headers", {}), "Origin": EVIL, "Content-Type": "text/plain"}
            r = c.post("/v1/events", content=EVENT, headers=headers, **extra)
            assert r.status_code == 202, r.text
            r = c.post(
                "/v1/subscriptions",
                content=b'{"channel":"q.>","sink":{"kind":"web"}}',
                headers=headers,
                **extra,
            )
            assert r.status_code == 201, r.text
    assert len(state(gw, alice)[0]) == 2


def test_a_bad_header_token_is_not_rescued_and_reads_need_no_origin(
    gw: Gateway, alice: str
) -> None:
    with http(gw, cookies={"notify_token": alice}) as c:
        assert c.get("/v1/events", params={"channel": ">"}, headers={"Origin": EVIL}).is_success
        r = c.post("/v1/events", content=EVENT, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401


async def test_a_cookie_websocket_needs_a_trusted_origin(gw: Gateway, alice: str) -> None:
    """CORS does not guard sockets, and a socket can read and publish: a handshake
    authenticated by the cookie must come from a trusted origin too."""
    url = gw.base_url.replace("http://", "ws://") + "/v1/ws"
    cookie = {"Cookie": f"notify_token={alice}"}
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(url, additional_headers=cookie, origin=Origin(EVIL)):
            pass
    assert info.value.response.status_code == 403
    assert b"/cross-origin" in info.value.response.body
    # browsers always send Origin on a handshake: a client without one is no browser,
    # and no other site's page can be behind it
    for origin in (APP, gw.base_url, None):
        async with websockets.connect(
            url, additional_headers=cookie, origin=Origin(origin) if origin else None
        ) as c:
            await c.send(json.dumps({"op": "ping", "ref": 1}))
            assert json.loads(await c.recv()) == {"op": "pong", "ref": 1}
    # a query token is not sent by the browser on its own: unaffected
    async with websockets.connect(f"{url}?token={alice}", origin=Origin(EVIL)) as c:
        await c.send(json.dumps({"op": "ping", "ref": 2}))
        assert json.loads(await c.recv()) == {"op": "pong", "ref": 2}
