"""The documented request/response endpoints, in-process (see conftest)."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
import redis.asyncio as aioredis

from notify import keys
from tests.api.conftest import ApiFactory
from tests.support.factories import TokenMaker
from tests.support.redis import RedisServer

PROBLEM = "application/problem+json"


async def test_publish_then_read_back_in_history(
    api_factory: ApiFactory, make_token: TokenMaker
) -> None:
    api = await api_factory(make_token(publish=["orders.>"], subscribe=["orders.>"]))
    first = await api.post("/v1/events", json={"channel": "orders.eu", "type": "t", "data": 1})
    assert first.status_code == 202, first.text
    batch = await api.post(
        "/v1/events/batch",
        json={"events": [{"channel": "orders.us", "type": "t", "data": n} for n in (2, 3)]},
    )
    assert batch.status_code == 202, batch.text
    ids = [first.json()["id"], *batch.json()["ids"]]
    page = (await api.get("/v1/events", params={"channel": "orders.>"})).json()
    assert [e["id"] for e in page["events"]] == ids
    assert [e["data"] for e in page["events"]] == [1, 2, 3]
    exact = (await api.get("/v1/events", params={"channel": "orders.us", "limit": 1})).json()
    assert [e["data"] for e in exact["events"]] == [2]
    assert exact["next"] == ids[1]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "bad channel", "type": "t", "data": 1}, "channel"),
        ({"channel": "orders.eu", "type": "", "data": 1}, "type"),
        ({"channel": "orders.eu", "type": "t"}, "data"),
    ],
)
async def test_bad_events_are_problems_naming_the_field(
    api_factory: ApiFactory, make_token: TokenMaker, body: dict[str, object], field: str
) -> None:
    api = await api_factory(make_token(publish=[">"], subscribe=[">"]))
    answer = await api.post("/v1/events", json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["field"] == field
    bad_batch = {"events": [{"channel": "a", "type": "t", "data": 0}, body]}
    answer = await api.post("/v1/events/batch", json=bad_batch)
    assert answer.status_code == 422
    assert answer.json()["field"].startswith("events[1]")
    assert (await api.get("/v1/events", params={"channel": ">"})).json()["events"] == []


async def test_authentication_and_rights(api_factory: ApiFactory, make_token: TokenMaker) -> None:
    anonymous = await api_factory()
    for answer in (
        await anonymous.post("/v1/events", json={"channel": "a", "type": "t", "data": 1}),
        await anonymous.get("/v1/events", params={"channel": "a"}),
        await anonymous.get("/v1/subscriptions"),
    ):
        assert answer.status_code == 401
        assert answer.headers["content-type"].startswith(PROBLEM)
    reader = await api_factory(make_token(subscribe=["news.>"]))
    refused = await reader.post("/v1/events", json={"channel": "news.a", "type": "t", "data": 1})
    assert refused.status_code == 403
    assert (await reader.get("/v1/events", params={"channel": "orders.eu"})).status_code == 403
    assert (await reader.get("/v1/events", params={"channel": "news.a"})).status_code == 200
    # the personal channel needs no claim
    assert (await reader.get("/v1/events", params={"channel": "user.alice.x"})).status_code == 200


async def test_subscription_lifecycle(api_factory: ApiFactory, make_token: TokenMaker) -> None:
    api = await api_factory(make_token(subscribe=["orders.>"]), allow_private_targets=True)
    created = await api.post(
        "/v1/subscriptions",
        json={"channel": "orders.*", "sink": {"kind": "webhook", "url": "http://127.0.0.1:9/h"}},
    )
    assert created.status_code == 201, created.text
    sub = created.json()
    assert sub["secret"].startswith("whsec_")
    assert "secret" not in (await api.get(f"/v1/subscriptions/{sub['id']}")).json()
    patched = await api.patch(f"/v1/subscriptions/{sub['id']}", json={"enabled": False})
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    listed = (await api.get("/v1/subscriptions")).json()
    assert [s["id"] for s in listed["subscriptions"]] == [sub["id"]]
    deliveries = await api.get("/v1/deliveries", params={"subscription": sub["id"]})
    assert deliveries.status_code == 200 and deliveries.json()["deliveries"] == []
    assert (await api.delete(f"/v1/subscriptions/{sub['id']}")).status_code == 204
    gone = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert gone.status_code == 404 and gone.headers["content-type"].startswith(PROBLEM)
    refused = await api.post(
        "/v1/subscriptions", json={"channel": "billing.>", "sink": {"kind": "web"}}
    )
    assert refused.status_code == 403


async def test_operations_endpoints(api_factory: ApiFactory) -> None:
    api = await api_factory()
    assert (await api.get("/healthz")).status_code == 200
    assert (await api.get("/readyz")).status_code == 200
    text = (await api.get("/metrics")).text
    assert "notify_events_published_total" in text
    for standard in ("process_resident_memory_bytes", "python_gc_collections_total"):
        assert standard in text
    assert "notify_dispatch_lag_entries" not in text  # no dispatcher has ever run
    assert "notify_retry_due_deliveries 0.0" in text
    schema = (await api.get("/openapi.json")).json()
    assert "/v1/events" in schema["paths"] and "/v1/subscriptions" in schema["paths"]


async def test_readyz_names_a_reader_that_is_not_running(
    api_factory: ApiFactory, redis_server: RedisServer
) -> None:
    """Redis answers but the event reader cannot read the log (here: the log's key holds
    a string): ``/readyz`` is the ``not-ready`` problem naming the reader, not 200."""
    client = aioredis.Redis.from_url(redis_server.url)
    await client.set(keys.LOG, "not a stream")
    api = await api_factory()
    down = await api.get("/readyz")
    assert down.status_code == 503 and down.headers["Retry-After"] == "1"
    assert down.headers["content-type"] == PROBLEM
    body = down.json()
    assert body["type"].endswith("/not-ready") and body["status"] == 503
    assert body["problems"] == ["event reader not running"]
    await client.delete(keys.LOG)
    await client.aclose()
    deadline = time.monotonic() + 10
    while (ready := await api.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, ready.text
        await asyncio.sleep(0.05)
    assert ready.json() == {"status": "ready"}


async def test_metrics_report_the_dispatch_backlog_and_the_retry_set(
    api_factory: ApiFactory, make_token: TokenMaker, redis_server: RedisServer
) -> None:
    api = await api_factory(make_token(publish=[">"]))
    client = aioredis.Redis.from_url(redis_server.url)
    await client.xgroup_create(keys.LOG, keys.DISPATCH_GROUP, id="0", mkstream=True)
    for n in range(5):
        await api.post("/v1/events", json={"channel": "a", "type": "t", "data": n})
    # a dispatcher read two entries and died before acknowledging them
    await client.xreadgroup(keys.DISPATCH_GROUP, "gone", {keys.LOG: ">"}, count=2)
    late = (time.time() - 90) * 1000
    await client.zadd(keys.RETRY_DUE, {"dlv_a": late, "dlv_b": late + 60_000})
    await client.aclose()
    text = (await api.get("/metrics")).text
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith(("notify_dispatch", "notify_retry"))
    }
    assert values["notify_dispatch_lag_entries"] == 3
    assert values["notify_dispatch_pending_entries"] == 2
    assert 0 <= values["notify_dispatch_oldest_pending_seconds"] < 60
    assert values["notify_retry_due_deliveries"] == 2
    assert 89 <= values["notify_retry_overdue_seconds"] < 120


async def test_a_page_elsewhere_may_send_traceparent_and_history_documents_it(
    api_factory: ApiFactory, make_token: TokenMaker
) -> None:
    """A browser on an allowed origin may send ``traceparent`` (the preflight lists it),
    and the stored event's ``traceparent`` matches the envelope's documented schema."""
    origin = "https://app.example.com"
    api = await api_factory(make_token(publish=["t.>"], subscribe=["t.>"]), cors_origins=origin)
    preflight = await api.options(
        "/v1/events",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, traceparent",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert "traceparent" in preflight.headers["access-control-allow-headers"].lower()
    traceparent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    r = await api.post(
        "/v1/events",
        json={"channel": "t.a", "type": "t", "data": 1},
        headers={"origin": origin, "traceparent": traceparent},
    )
    assert r.status_code == 202, r.text
    [event] = (await api.get("/v1/events", params={"channel": "t.a"})).json()["events"]
    assert event["traceparent"] == traceparent
    document = (await api.get("/openapi.json")).json()
    page = document["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]
    envelope = page["application/json"]["schema"]["properties"]["events"]["items"]
    assert re.fullmatch(envelope["properties"]["traceparent"]["pattern"], event["traceparent"])
