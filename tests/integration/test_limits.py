"""Limits that hold across gateway processes: concurrent streams per subject, failed
authentications per client address."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from tests.integration.clients import sse, ws, ws_recv
from tests.support.factories import GatewayFactory, TokenMaker

pytestmark = pytest.mark.asyncio


async def test_concurrent_streams_per_subject_across_gateways(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    a = gateway_factory(NOTIFY_MAX_STREAMS_PER_SUBJECT="2")
    b = gateway_factory(NOTIFY_MAX_STREAMS_PER_SUBJECT="2")
    alice = make_token("alice", subscribe=[">"])
    bob = make_token("bob", subscribe=[">"])
    async with sse(a.base_url, ["x"], alice), ws(b.base_url, alice) as socket:
        await socket.send(json.dumps({"op": "ping", "ref": 1}))
        assert (await ws_recv(socket))["op"] == "pong"
        async with httpx.AsyncClient(base_url=a.base_url, trust_env=False) as client:
            third = await client.get("/v1/stream", params={"channel": "x", "token": alice})
        assert third.status_code == 429 and int(third.headers["Retry-After"]) >= 1
        assert third.headers["content-type"] == "application/problem+json"
        with pytest.raises(websockets.InvalidStatus) as info:
            async with ws(b.base_url, alice):
                pass
        assert info.value.response.status_code == 429
        async with sse(b.base_url, ["x"], bob):  # another subject is not affected
            pass
    await asyncio.sleep(0.5)  # the closed streams give their places back
    async with sse(a.base_url, ["x"], alice), sse(b.base_url, ["x"], alice):
        pass


async def test_failed_authentications_are_limited_per_address_across_gateways(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    a = gateway_factory(NOTIFY_AUTH_FAILURES_PER_MINUTE="3")
    b = gateway_factory(NOTIFY_AUTH_FAILURES_PER_MINUTE="3")
    good = make_token("alice", publish=[">"])
    event = {"channel": "x", "type": "t", "data": 1}

    def post(base: str, token: str | None) -> httpx.Response:
        return httpx.post(
            f"{base}/v1/events",
            json=event,
            trust_env=False,
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )

    assert [post(a.base_url, None).status_code for _ in range(2)] == [401, 401]
    assert post(b.base_url, "bad").status_code == 401
    # a fourth failure from this address, over the limit of three: refused as too
    # many on b, whether it has a bad token or none
    blocked = post(b.base_url, "bad")
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert post(b.base_url, None).status_code == 429
    # a learns it from its next failure, counted in the same place
    assert post(a.base_url, "bad").status_code == 429
    # but a valid token from the same address is never locked out
    assert post(a.base_url, good).status_code == 202
    assert post(b.base_url, good).status_code == 202
