"""notify.Client against real gateways: typed API methods, and a stream that resumes
across a gateway SIGKILL with no loss and no repeat."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Literal

import pytest

from notify import Client, Publisher
from notify.client import Event, Unreachable
from notify.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from tests.support.factories import TokenMaker
from tests.support.procs import Gateway
from tests.support.redis import RedisServer


async def collect(stream: AsyncIterator[Event], into: list[Event]) -> None:
    async for event in stream:
        into.append(event)


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_stream_resumes_across_a_gateway_kill(
    redis_server: RedisServer,
    gateway: Gateway,
    make_token: TokenMaker,
    transport: Literal["sse", "ws"],
) -> None:
    token = make_token(subscribe=["orders.>"], publish=["orders.>"])
    got: list[Event] = []
    published: list[str] = []
    async with Client(gateway.base_url, token, backoff=(0.05, 0.5)) as client:
        task = asyncio.create_task(collect(client.stream("orders.>", transport=transport), got))
        try:
            await asyncio.sleep(1.0)  # let the stream attach: it starts from now
            for n in range(3):
                published.append(await client.publish("orders.eu", "t", {"n": n}))
            await until(lambda: len(got) == 3)

            gateway.kill()  # SIGKILL: the stream just ends
            with Publisher(redis_server.url) as producer:
                for n in range(3, 8):
                    published.append(producer.publish(f"orders.x{n}", "t", {"n": n}))
            await asyncio.to_thread(gateway.start)
            published.append(await client.publish("orders.eu", "t", {"n": 8}))
            await until(lambda: len(got) >= 9)
            await asyncio.sleep(0.5)  # nothing more may come: no repeats
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert [e.id for e in got] == published
    assert [e.data["n"] for e in got] == list(range(9))
    assert got[3].channel == "orders.x3" and got[0].cursor == got[0].id


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_stream_from_a_saved_position(
    gateway: Gateway, make_token: TokenMaker, transport: Literal["sse", "ws"]
) -> None:
    token = make_token(subscribe=["a.>"], publish=["a.>"])
    async with Client(gateway.base_url, token) as client:
        ids = [await client.publish("a.b", "t", n) for n in range(5)]
        got: list[Event] = []
        task = asyncio.create_task(
            collect(client.stream("a.*", last_event_id=ids[1], transport=transport), got)
        )
        try:
            await until(lambda: len(got) == 3)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert [e.id for e in got] == ids[2:]
        page = await client.history("a.>", limit=2)
        assert [e.id for e in page.events] == ids[:2] and page.next == ids[1]
        page = await client.history("a.>", after=page.next)
        assert [e.data for e in page.events] == [2, 3, 4] and page.next is None


async def test_typed_methods_and_errors(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token(subscribe=["s.>"], publish=["s.>"])
    async with Client(gateway.base_url, token) as client:
        first = await client.publish("s.a", "t", 1, idempotency_key="k")
        assert await client.publish("s.a", "t", 2, idempotency_key="k") == first
        assert len(await client.publish_many([{"channel": "s.b", "type": "t", "data": 0}])) == 1
        sub = await client.subscribe("s.>", {"kind": "email", "to": "a@example.com"})
        assert [s["id"] for s in await client.subscriptions()] == [sub["id"]]
        changed = await client.update_subscription(sub["id"], types=["t"])
        assert changed["types"] == ["t"]
        assert (await client.subscription(sub["id"]))["types"] == ["t"]
        assert await client.deliveries(sub["id"]) == []
        await client.unsubscribe(sub["id"])
        with pytest.raises(NotFound):
            await client.subscription(sub["id"])
        with pytest.raises(Forbidden) as forbidden:
            await client.publish("other", "t", 1)
        assert forbidden.value.field == "channel"
        with pytest.raises(InvalidInput) as invalid:
            await client.publish("s..x", "bad type", 1)
        assert [e.field for e in invalid.value.each()] == ["channel", "type"]
        for transport in ("sse", "ws"):
            with pytest.raises(Forbidden):
                async for _ in client.stream("secret.>", transport=transport):  # type: ignore[arg-type]
                    pass
    async with Client(gateway.base_url, "nonsense") as bad:
        with pytest.raises(Unauthenticated):
            await bad.history("s.>")
    async with Client("http://127.0.0.1:1", token) as nowhere:
        with pytest.raises(Unreachable):
            await nowhere.publish("s.a", "t", 1)
