"""notify.Client over a sharded gateway (``NOTIFY_SHARDS=3`` on one Redis): a stream cut
resumes from the cursor the gateway gave (``Event.cursor``, over every shard), never from
an event's own id, so every event comes exactly once and each channel in order.

On a Redis Cluster each shard's primary has its own clock, so the ids of different
shards do not compare in time. One Redis has one clock: :func:`skew_ahead` sets one
shard's last given id an hour ahead, as a primary whose clock ran ahead leaves it (its
ids stay ahead). A client that resumed from the id of an event of that shard would then
skip what the other shards took during the cut; the cursor resumes every shard where it
stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Literal

import pytest
import redis

from notify import Client, Publisher, keys
from notify.client import Event
from notify.events import parse_id
from notify.shards import Positions, Vector, shard_of
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.redis import RedisServer

SHARDS = 3
AHEAD = SHARDS - 1
"""The shard whose ids run an hour ahead (the last one :func:`spread` names)."""
AHEAD_MS = 3_600_000


def spread(prefix: str, per_shard: int = 2) -> list[str]:
    """Channels ``<prefix>.<n>``, ``per_shard`` of them on each shard, in shard order:
    the last ones live on :data:`AHEAD`."""
    picked: dict[int, list[str]] = {s: [] for s in range(SHARDS)}
    n = 0
    while any(len(names) < per_shard for names in picked.values()):
        name = f"{prefix}.{n}"
        names = picked[shard_of(name, SHARDS)]
        if len(names) < per_shard:
            names.append(name)
        n += 1
    return [name for s in range(SHARDS) for name in picked[s]]


def skew_ahead(redis_url: str, channel: str) -> None:
    """From now on ``channel``'s shard gives ids an hour ahead of the others (one event
    is published on it first: a log must exist to have its last id set)."""
    shard = shard_of(channel, SHARDS)
    with Publisher(redis_url) as producer:
        producer.publish(channel, "warm.up", None)
    client = redis.Redis.from_url(redis_url)
    try:
        ahead = f"{int(time.time() * 1000) + AHEAD_MS}-0"
        client.execute_command("XSETID", keys.shard(shard, SHARDS).log, ahead)  # type: ignore[no-untyped-call]
    finally:
        client.close()


def cursor_after(ids: Iterable[str]) -> Vector:
    """The position just after ``ids`` on every shard: each shard's greatest id among
    them (an id's shard is its sequence number modulo the shard count)."""
    last: dict[int, tuple[int, int]] = {}
    for event_id in ids:
        at = parse_id(event_id)
        last[at[1] % SHARDS] = max(last.get(at[1] % SHARDS, (0, 0)), at)
    assert sorted(last) == list(range(SHARDS)), last
    return tuple(last[s] for s in range(SHARDS))


def check_once(got: Iterable[tuple[str, str]], sent: dict[str, list[str]]) -> None:
    """``got`` (id, channel pairs) holds every id of ``sent`` exactly once, and each
    channel's in the order it was sent."""
    per_channel: dict[str, list[str]] = defaultdict(list)
    for event_id, channel in got:
        per_channel[channel].append(event_id)
    assert dict(per_channel) == sent


async def collect(stream: AsyncIterator[Event], into: list[Event]) -> None:
    async for event in stream:
        into.append(event)


async def settle(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Wait for ``check``; whether it held (the caller's assertion says what is wrong)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return False


@contextlib.asynccontextmanager
async def following(
    client: Client, pattern: str, transport: Literal["sse", "ws"]
) -> AsyncIterator[list[Event]]:
    got: list[Event] = []
    task = asyncio.create_task(collect(client.stream(pattern, transport=transport), got))
    try:
        await asyncio.sleep(1.0)  # let the stream attach: it starts from now
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_stream_resumes_exactly_over_three_shards_across_gateway_kills(
    redis_server: RedisServer,
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
    transport: Literal["sse", "ws"],
) -> None:
    gateway = gateway_factory(NOTIFY_SHARDS=SHARDS)
    channels = spread("orders")
    skew_ahead(redis_server.url, channels[-1])
    token = make_token(subscribe=["orders.>"], publish=["orders.>"])
    sent: dict[str, list[str]] = {c: [] for c in channels}
    async with (
        Client(gateway.base_url, token, backoff=(0.05, 0.5)) as client,
        following(client, "orders.*", transport) as got,
    ):
        # a cut before any event: the position the stream opened with (a cursor) is
        # where it resumes
        gateway.kill()
        with Publisher(redis_server.url) as producer:
            for c in channels:
                sent[c].append(producer.publish(c, "t", {"round": 0}))
        await asyncio.to_thread(gateway.restart)
        assert await settle(lambda: len(got) == len(channels), timeout=30), got
        # the last event before the cut is one of the shard ahead
        sent[channels[-1]].append(await client.publish(channels[-1], "t", {"round": 1}))
        assert await settle(lambda: len(got) == len(channels) + 1), got
        assert got[-1].channel == channels[-1]
        assert Positions(SHARDS).parse(got[-1].cursor) == cursor_after(e.id for e in got)

        gateway.kill()  # SIGKILL: the stream just ends
        with Publisher(redis_server.url) as producer:
            for c in channels:
                sent[c].append(producer.publish(c, "t", {"round": 2}))
        await asyncio.to_thread(gateway.restart)
        for c in channels:
            sent[c].append(await client.publish(c, "t", {"round": 3}))
        total = sum(map(len, sent.values()))
        await settle(lambda: len(got) >= total, timeout=30)
        await asyncio.sleep(0.5)  # nothing more may come: no repeats
    check_once(((e.id, e.channel) for e in got), sent)
    assert all(e.cursor.startswith("~") and e.cursor != e.id for e in got)
    # what came during the cut is where the shard ahead says it is: after everything
    ahead = [e for e in got if shard_of(e.channel, SHARDS) == AHEAD]
    assert all(parse_id(e.id) > parse_id(x.id) for e in ahead for x in got if x not in ahead)


class CuttingProxy:
    """A TCP relay in front of a gateway. Armed with a marker, it passes the next
    gateway bytes holding the marker only up to the line that holds it, then closes
    both sides: an SSE frame whose ``id:`` line got through and whose ``data:`` line
    did not, as a connection lost in the middle of a frame leaves it."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.marker: bytes | None = None
        self.cuts = 0
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> CuttingProxy:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        pipes = [
            asyncio.create_task(self.pipe(reader, up_writer, cutting=False)),
            asyncio.create_task(self.pipe(up_reader, writer, cutting=True)),
        ]
        self.tasks.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
                self.tasks.discard(task)
            for w in (writer, up_writer):
                w.close()

    async def pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, cutting: bool
    ) -> None:
        while data := await source.read(65536):
            at = data.find(self.marker) if cutting and self.marker else -1
            if at >= 0:
                self.marker = None
                self.cuts += 1
                sink.write(data[: data.rfind(b"\n", 0, at) + 1])
                await sink.drain()
                return
            sink.write(data)
            await sink.drain()


async def test_a_stream_cut_inside_a_frame_resumes_before_that_frame(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    # the cursor of the `id:` line of a frame cut short is not where to resume: the
    # frame's event never reached the caller
    gateway = gateway_factory(NOTIFY_SHARDS=SHARDS)
    channels = spread("orders")
    token = make_token(subscribe=["orders.>"], publish=["orders.>"])
    sent: dict[str, list[str]] = {c: [] for c in channels}
    async with (
        CuttingProxy(gateway.port) as proxy,
        Client(proxy.url, token, backoff=(0.05, 0.5)) as client,
        following(client, "orders.*", "sse") as got,
    ):
        for c in channels:
            sent[c].append(await client.publish(c, "t", {"round": 0}))
        assert await settle(lambda: len(got) == len(channels)), got
        proxy.marker = b'"cut":true'
        sent[channels[0]].append(await client.publish(channels[0], "t", {"cut": True}))
        assert await settle(lambda: proxy.cuts == 1)
        for c in channels:
            sent[c].append(await client.publish(c, "t", {"round": 2}))
        total = sum(map(len, sent.values()))
        await settle(lambda: len(got) >= total)
        await asyncio.sleep(0.5)
    check_once(((e.id, e.channel) for e in got), sent)
    assert proxy.cuts == 1
