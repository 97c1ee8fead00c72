"""GET /v1/feed follows the caller's web subscriptions live, without reconnecting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.integration.clients import SSE, publish
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import Gateway

EFFECT_SECONDS = 1.0  # the spec's bound on a subscription change reaching open feeds


@asynccontextmanager
async def feed(base_url: str, token: str) -> AsyncIterator[SSE]:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False) as client,
        client.stream("GET", "/v1/feed", params={"token": token}) as response,
    ):
        assert response.status_code == 200
        yield SSE(response, response.aiter_lines())


async def test_feed_follows_subscription_changes(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token("alice", publish=[">"], subscribe=["orders.>", "alerts.>"])
    base = gateway.base_url

    def send(channel: str, type_: str = "t") -> str:
        return publish(base, token, channel, type_)

    async with httpx.AsyncClient(
        base_url=base, headers={"authorization": f"Bearer {token}"}, trust_env=False
    ) as api:
        orders = await api.post(
            "/v1/subscriptions", json={"channel": "orders.eu", "sink": {"kind": "web"}}
        )
        async with feed(base, token) as stream:
            first = await asyncio.to_thread(send, "orders.eu")
            assert (await stream.next()).id == first

            created = await api.post(
                "/v1/subscriptions",
                json={"channel": "alerts.*", "types": ["alert.fired"], "sink": {"kind": "web"}},
            )
            assert created.status_code == 201
            await asyncio.sleep(EFFECT_SECONDS)
            await asyncio.to_thread(send, "alerts.db", "alert.resolved")  # filtered by type
            fired = await asyncio.to_thread(send, "alerts.db", "alert.fired")
            assert (await stream.next()).id == fired

            assert (await api.delete(f"/v1/subscriptions/{orders.json()['id']}")).status_code == 204
            await asyncio.sleep(EFFECT_SECONDS)
            await asyncio.to_thread(send, "orders.eu")  # no longer followed
            marker = await asyncio.to_thread(send, "alerts.x", "alert.fired")
            assert (await stream.next()).id == marker

            patched = await api.patch(
                f"/v1/subscriptions/{created.json()['id']}", json={"types": None}
            )
            assert patched.status_code == 200
            await asyncio.sleep(EFFECT_SECONDS)
            any_type = await asyncio.to_thread(send, "alerts.db", "alert.resolved")
            assert (await stream.next()).id == any_type


async def test_feed_resumes_and_admin_may_follow_another_user(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    bob = make_token("bob", publish=[">"], subscribe=["news.>"])
    admin = make_token("root", admin=True)
    base = gateway.base_url
    async with httpx.AsyncClient(
        base_url=base, headers={"authorization": f"Bearer {bob}"}, trust_env=False
    ) as api:
        made = await api.post(
            "/v1/subscriptions", json={"channel": "news.*", "sink": {"kind": "web"}}
        )
        assert made.status_code == 201
        refused = await api.get("/v1/feed", params={"user": "alice"})
        assert refused.status_code == 403
    first = await asyncio.to_thread(publish, base, bob, "news.a")
    missed = [await asyncio.to_thread(publish, base, bob, c) for c in ("news.b", "other", "news.c")]
    async with (
        httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as client,
        client.stream(
            "GET", "/v1/feed", params={"token": admin, "user": "bob", "last_event_id": first}
        ) as response,
    ):
        assert response.status_code == 200
        stream = SSE(response, response.aiter_lines())
        assert [f.id for f in await stream.events(2)] == [missed[0], missed[2]]


async def test_open_feeds_hold_no_fair_share_turn(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    """Streams are outside the per-client fair share: with the share at 2, three open
    feeds of one user leave that user's next request to run at once."""
    gw = gateway_factory(NOTIFY_API_CONCURRENCY_PER_CLIENT=2)
    token = make_token("alice", subscribe=["orders.>"])
    async with (
        feed(gw.base_url, token),
        feed(gw.base_url, token),
        feed(gw.base_url, token),
        httpx.AsyncClient(
            base_url=gw.base_url, headers={"authorization": f"Bearer {token}"}, trust_env=False
        ) as api,
    ):
        listed = await asyncio.wait_for(api.get("/v1/subscriptions"), 3.0)
        assert listed.status_code == 200
