"""The Python producer API and the command line, against a real Redis."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from notify import AsyncPublisher, Publisher
from notify.errors import InvalidChannel, InvalidEvent, StoreUnavailable, TooLarge
from tests.integration.clients import sse
from tests.support.factories import TokenMaker
from tests.support.procs import Gateway, child_env
from tests.support.redis import RedisServer


def history(gw: Gateway, token: str, channel: str) -> list[dict[str, object]]:
    import httpx

    r = httpx.get(
        f"{gw.base_url}/v1/events",
        params={"channel": channel},
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
    )
    events: list[dict[str, object]] = r.json()["events"]
    return events


def test_sync_publisher_writes_what_streams_and_history_read(
    redis_server: RedisServer, gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(subscribe=[">"])
    with Publisher(redis_server.url) as pub:
        first = pub.publish("jobs.done", "job.finished", {"job": 1}, origin="cron")
        batch = pub.publish_many(
            [{"channel": "jobs.done", "type": "t", "data": i} for i in range(3)]
        )
        with pytest.raises(InvalidChannel):
            pub.publish("jobs..x", "t", 1)
        with pytest.raises(InvalidEvent):
            pub.publish("jobs", "bad type", 1)
        with pytest.raises(TooLarge):
            pub.publish("jobs", "t", "x" * 70000)
        with pytest.raises(InvalidEvent):
            pub.publish("jobs", "t", {1, 2})
    events = history(gateway, token, "jobs.*")
    assert [e["id"] for e in events] == [first, *batch]
    assert events[0]["origin"] == "cron" and events[0]["data"] == {"job": 1}


@pytest.mark.asyncio
async def test_async_publisher_reaches_a_live_stream(
    redis_server: RedisServer, gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(subscribe=[">"])
    async with sse(gateway.base_url, ["a.>"], token) as s, AsyncPublisher(redis_server.url) as pub:
        event_id = await pub.publish("a.b", "t", [1, 2])
        frame = await s.next()
        assert frame.id == event_id and frame.json["data"] == [1, 2]
    sync = Publisher(redis_server.url)
    try:
        assert await sync.apublish("a.c", "t", None)
    finally:
        await sync.aclose()


def test_publisher_reports_a_dead_store() -> None:
    with Publisher("redis://127.0.0.1:1/0") as pub, pytest.raises(StoreUnavailable):
        pub.publish("x", "t", 1)


def notify_cli(*args: str, env: dict[str, object]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notify", *args],
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_token_publish_tail(
    redis_server: RedisServer, gateway: Gateway, jwt_secret: str
) -> None:
    env: dict[str, object] = {"NOTIFY_REDIS_URL": redis_server.url, "NOTIFY_JWT_SECRET": jwt_secret}
    minted = notify_cli("token", "--sub", "ops", "--subscribe", "cli.>", env=env)
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    tail = subprocess.Popen(
        [sys.executable, "-m", "notify", "tail", "cli.>", "--count", "2"],
        env=child_env(env),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        asyncio.run(asyncio.sleep(1.0))
        one = notify_cli("publish", "cli.a", "t", '{"k": 1}', env=env)
        assert one.returncode == 0, one.stderr
        two = notify_cli("publish", "cli.b", "t", env=env)
        out, _ = tail.communicate(timeout=30)
    finally:
        tail.kill()
        tail.wait()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [e["id"] for e in lines] == [one.stdout.strip(), two.stdout.strip()]
    assert lines[0]["data"] == {"k": 1} and lines[1]["data"] is None
    assert [e["id"] for e in history(gateway, token, "cli.>")] == [e["id"] for e in lines]
    bad = notify_cli("publish", "cli..a", "t", env=env)
    assert bad.returncode == 1 and "invalid channel" in bad.stderr
    bad_json = notify_cli("publish", "cli.a", "t", "{nope", env=env)
    assert bad_json.returncode == 2 and "JSON" in bad_json.stderr
    huge = notify_cli("publish", "cli.a", "t", str(10**30), env=env)
    assert huge.returncode == 2 and "send it as a string" in huge.stderr
    # a token no gateway would take is refused when minted, not at its first use
    bad_sub = notify_cli("token", "--sub", "bad sub", env=env)
    assert bad_sub.returncode == 2 and bad_sub.stdout == "" and "'sub'" in bad_sub.stderr
    bad_pattern = notify_cli("token", "--sub", "ops", "--publish", "a..b", env=env)
    assert bad_pattern.returncode == 2 and "'publish'" in bad_pattern.stderr
    bad_setting = notify_cli("publish", "cli.a", "t", env={**env, "NOTIFY_MAX_QUEUED": "lots"})
    assert bad_setting.returncode == 2 and "NOTIFY_MAX_QUEUED" in bad_setting.stderr


@pytest.mark.parametrize(
    "data",
    [float("nan"), {"x": [float("inf")]}, -float("inf"), {1: "key"}, {"when": object()}],
)
def test_the_publisher_refuses_what_http_refuses_and_stores_nothing(
    redis_server: RedisServer, data: object
) -> None:
    with Publisher(redis_server.url) as pub:
        with pytest.raises(InvalidEvent) as refused:
            pub.publish("odd", "t", data)
        assert refused.value.field == "data"
        with pytest.raises(InvalidEvent):
            pub.publish_many([{"channel": "odd", "type": "t", "data": data}])
        pub.publish("odd", "t", 1.5)  # an ordinary float is fine
        assert pub.redis_url  # the publisher is still usable


CLOUDEVENT = {
    "specversion": "1.0",
    "id": "order-7",
    "source": "//shop/orders",
    "type": "order.created",
    "channel": "shop.orders",
    "subject": "7",
    "data": {"total": 12},
}


@pytest.mark.asyncio
async def test_publishers_take_cloudevents_as_the_gateway_does(
    redis_server: RedisServer, gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(subscribe=[">"])
    files = {k: v for k, v in CLOUDEVENT.items() if k not in ("channel", "data")}
    with Publisher(redis_server.url) as pub:
        first = pub.publish_cloudevent(CLOUDEVENT)
        assert pub.publish_cloudevent(CLOUDEVENT) == first  # source + id: stored once
        binary = pub.publish_cloudevent(
            {**files, "id": "order-8", "data_base64": "aGk="}, channel="shop.files"
        )
        with pytest.raises(InvalidEvent) as refused:
            pub.publish_cloudevent({k: v for k, v in CLOUDEVENT.items() if k != "source"})
        assert refused.value.field == "source"
    async with AsyncPublisher(redis_server.url) as apub:
        later = await apub.publish_cloudevent({**CLOUDEVENT, "id": "order-9"})
        assert await apub.publish_cloudevent({**CLOUDEVENT, "id": "order-9"}) == later
    events = {e["id"]: e for e in history(gateway, token, "shop.*")}
    assert list(events) == [first, binary, later]
    one = events[first]
    assert (one["channel"], one["type"], one["data"]) == (
        "shop.orders",
        "order.created",
        {"total": 12},
    )
    assert one["ce"]["source"] == "//shop/orders" and one["ce"]["subject"] == "7"
    assert events[binary]["channel"] == "shop.files" and events[binary]["data"] == "aGk="
