"""What a sharded event log must do, seen from outside (SSE, WebSocket, history,
batches, a producer), for any store: a plain Redis with ``NOTIFY_SHARDS=3``
(test_shards.py) and a real Redis Cluster (test_cluster.py) run the same checks."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

import httpx

from notify import shards
from notify.events import parse_id
from notify.publisher import Publisher
from tests.integration.clients import Frame, publish, sse, ws, ws_recv

SHARDS = 3
CHANNELS = [f"orders.{i}" for i in range(12)]


def spread() -> None:
    """The test channels cover every shard (else the checks below prove little)."""
    assert {shards.shard_of(c, SHARDS) for c in CHANNELS} == set(range(SHARDS))


def check_ids(events: list[dict[str, Any]], published: list[str]) -> None:
    """Every published event exactly once; each channel's in publish order; each id
    from its channel's shard (its sequence number modulo the shard count)."""
    ids = [e["id"] for e in events]
    assert sorted(ids, key=parse_id) == sorted(published, key=parse_id), (ids, published)
    assert len(set(ids)) == len(ids)
    order = {event_id: n for n, event_id in enumerate(published)}
    per_channel: dict[str, list[int]] = defaultdict(list)
    for e in events:
        per_channel[e["channel"]].append(order[e["id"]])
        assert parse_id(e["id"])[1] % SHARDS == shards.shard_of(e["channel"], SHARDS)
    for seen in per_channel.values():
        assert seen == sorted(seen)


def publish_round(base: str, token: str, tag: str, rounds: int = 2) -> list[str]:
    return [
        publish(base, token, c, "order.placed", {"tag": tag, "n": n})
        for n in range(rounds)
        for c in CHANNELS
    ]


async def no_more(stream: Any, wait: float = 0.5) -> None:
    try:
        extra: Frame = await stream.next(timeout=wait)
    except TimeoutError:
        return
    raise AssertionError(f"a frame more than expected: {extra}")


async def sse_resumes_exactly(base: str, token: str) -> None:
    """A pattern stream over every shard: cursors as ids, cut in the middle, resumed
    with the last cursor: the rest, then live events, no gap and no duplicate."""
    spread()
    async with sse(base, ["orders.>"], token) as stream:
        start = await stream.position()
        assert start.startswith("~") and start.count(".") == SHARDS - 1
        first = publish_round(base, token, "first")
        frames = await stream.events(len(first))
        check_ids([f.json for f in frames], first)
        for f in frames:
            assert f.id is not None and f.id.startswith("~")
            assert f.id != f.json["id"]
        cut = frames[len(frames) // 2 - 1].id
        assert cut is not None
    later = publish_round(base, token, "later", rounds=1)
    async with sse(base, ["orders.>"], token, last_event_id=cut) as again:
        assert await again.position() == cut
        rest = await again.events(len(frames) // 2 + len(later))
        got = [f.json for f in rest]
        check_ids(got, [f.json["id"] for f in frames[len(frames) // 2 :]] + later)
        live = publish_round(base, token, "live", rounds=1)
        check_ids([f.json for f in await again.events(len(live))], live)
        await no_more(again)
    # an event id given as the cursor: a point in time on every shard, nothing lost
    async with sse(base, ["orders.>"], token, last_event_id=later[-1]) as from_id:
        await from_id.position()
        check_ids([f.json for f in await from_id.events(len(live))], live)
        await no_more(from_id)


async def ws_resumes_exactly(base: str, token: str) -> None:
    """The WebSocket says where it starts (a cursor), each event frame carries the
    position after it (``cursor``), and a subscribe from one of those resumes exactly."""
    async with ws(base, token) as conn:
        await conn.send(json.dumps({"op": "subscribe", "ref": "1", "channels": ["orders.>"]}))
        ok = await ws_recv(conn)
        assert ok["op"] == "ok" and ok["position"].startswith("~"), ok
        sent = publish_round(base, token, "ws", rounds=1)
        frames = [await ws_recv(conn) for _ in sent]
        assert all(f["op"] == "event" and f["cursor"].startswith("~") for f in frames)
        check_ids([f["event"] for f in frames], sent)
        cut = frames[4]["cursor"]
    async with ws(base, token) as conn:
        frame = {"op": "subscribe", "ref": "2", "channels": ["orders.>"], "last_event_id": cut}
        await conn.send(json.dumps(frame))
        ok = await ws_recv(conn)
        assert ok["op"] == "ok" and ok["position"] == cut, ok
        rest = [await ws_recv(conn) for _ in sent[5:]]
        check_ids([f["event"] for f in rest], [f["event"]["id"] for f in frames[5:]])
        with_more = publish(base, token, "orders.0", "order.placed", None)
        assert (await ws_recv(conn))["event"]["id"] == with_more


def history_pages_cover_every_shard(base: str, token: str, published: list[str]) -> None:
    """History over a pattern, page by page through ``next`` (a cursor): every event
    once, each channel in order; an exact channel reads its own shard alone."""
    seen: list[dict[str, Any]] = []
    after: str | None = None
    with httpx.Client(base_url=base, trust_env=False, timeout=10) as client:
        for _ in range(100):
            params = {"channel": "orders.>", "limit": "7", **({"after": after} if after else {})}
            r = client.get(
                "/v1/events", params=params, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 200, r.text
            page = r.json()
            seen += page["events"]
            after = page["next"]
            if after is None:
                break
            assert after.startswith("~")
        check_ids([e for e in seen if e["id"] in set(published)], published)
        one = client.get(
            "/v1/events",
            params={"channel": "orders.3"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert [e["channel"] for e in one["events"]] == ["orders.3"] * len(one["events"])
        bad = client.get(
            "/v1/events",
            params={"channel": "orders.>", "after": "~1.2"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert bad.status_code == 400, bad.text
        assert bad.json()["type"].endswith("/invalid-cursor"), bad.text


def batch_is_idempotent_across_shards(base: str, token: str) -> list[str]:
    """A batch over every shard is stored per shard; its Idempotency-Key makes a retry
    answer the same ids and store nothing new."""
    events = [{"channel": c, "type": "order.placed", "data": i} for i, c in enumerate(CHANNELS)]
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "batch-1"}
    with httpx.Client(base_url=base, trust_env=False, timeout=10) as client:
        first = client.post("/v1/events/batch", json={"events": events}, headers=headers)
        again = client.post("/v1/events/batch", json={"events": events}, headers=headers)
    assert first.status_code == 202 and again.status_code == 202, (first.text, again.text)
    ids: list[str] = first.json()["ids"]
    assert again.json()["ids"] == ids
    assert len(set(ids)) == len(ids)
    for event_id, channel in zip(ids, CHANNELS, strict=True):
        assert parse_id(event_id)[1] % SHARDS == shards.shard_of(channel, SHARDS)
    return ids


async def producer_follows_the_store(base: str, token: str, redis_url: str) -> None:
    """``notify.Publisher`` learns the shard count from the store: what it writes is
    streamed like any publish."""
    async with sse(base, ["orders.>"], token) as stream:
        await stream.position()
        with Publisher(redis_url) as producer:
            ids = [producer.publish(c, "order.placed", {"n": 1}) for c in CHANNELS]
            batch = producer.publish_many(
                [{"channel": c, "type": "order.placed", "data": 2} for c in CHANNELS]
            )
        check_ids([f.json for f in await stream.events(len(CHANNELS) * 2)], ids + batch)


def run(coro: Any) -> None:
    asyncio.run(coro)
