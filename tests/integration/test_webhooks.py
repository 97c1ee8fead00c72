"""Webhook delivery end to end: real gateway, dispatcher, Celery worker and receiver."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import httpx
import redis
from standardwebhooks import Webhook

from notify import keys
from tests.integration.clients import sse
from tests.integration.conftest import StackFactory
from tests.integration.delivery_stack import Stack
from tests.support.connect_proxy import running_proxy
from tests.support.factories import TokenMaker
from tests.support.ports import free_port
from tests.support.webhook_receiver import Answer, Receiver


def webhook(stack: Stack, receiver: Receiver, path: str, channel: str = "orders.>") -> str:
    sub = stack.subscribe(channel, {"kind": "webhook", "url": receiver.url(path)})
    assert sub["secret"].startswith("whsec_")
    receiver.trust(path, sub["secret"])
    return str(sub["id"])


def test_event_is_delivered_signed(stack: Stack, receiver: Receiver) -> None:
    sub = webhook(stack, receiver, "/hook")
    event_id = stack.publish("orders.eu", "order.created", {"order": 17})
    [got] = receiver.wait("/hook", 1)
    assert got.verified is True
    assert got.headers["content-type"] == "application/json"
    body = got.body
    assert body.startswith(b'{"id":"' + event_id.encode() + b'","channel":"orders.eu"')
    [record] = stack.wait_status(sub, "delivered")
    assert record["id"] == got.webhook_id
    assert record["event_id"] == event_id
    assert record["attempts"][0]["status_code"] == 200
    metrics = stack.client.get("/metrics").text
    assert 'notify_deliveries_total{sink="webhook",outcome="delivered"} 1' in metrics
    assert 'notify_delivery_latency_seconds_count{sink="webhook"} 1' in metrics
    # a finished record and its attempts are kept NOTIFY_DELIVERY_RETENTION_SECONDS
    # (7 days by default), a pending one until it ends
    with redis.Redis.from_url(str(stack.env["NOTIFY_REDIS_URL"])) as client:
        kept = [
            client.ttl(k)
            for k in (keys.delivery(got.webhook_id), keys.delivery_attempts(got.webhook_id))
        ]
    assert all(7 * 86400 - 60 < t <= 7 * 86400 for t in kept), kept


def test_500_then_200_is_retried_under_the_same_id(stack: Stack, receiver: Receiver) -> None:
    sub = webhook(stack, receiver, "/flaky")
    receiver.answer("/flaky", Answer(500), Answer(502, body=b"x" * 100_000))
    stack.publish("orders.eu")
    got = receiver.wait("/flaky", 3)
    assert len({r.webhook_id for r in got}) == 1
    assert all(r.verified for r in got)
    [record] = stack.wait_status(sub, "delivered")
    assert [a["outcome"] for a in record["attempts"]] == ["retry", "retry", "delivered"]
    assert [a["status_code"] for a in record["attempts"]] == [500, 502, 200]
    assert len(record["attempts"][1]["error"]) < 300  # a huge answer is not stored


def test_410_disables_the_subscription(stack: Stack, receiver: Receiver) -> None:
    sub = webhook(stack, receiver, "/gone")
    receiver.answer("/gone", default=Answer(410))
    stack.publish("orders.eu")
    [record] = stack.wait_status(sub, "failed")
    assert record["attempts"][-1]["status_code"] == 410
    state = stack.client.get(f"/v1/subscriptions/{sub}").json()
    assert state["enabled"] is False
    assert "410" in state["disabled_reason"]
    # a witness on the same channel: once it has the next event, the dispatcher has
    # routed that event (a record is written before its delivery is enqueued)
    webhook(stack, receiver, "/witness")
    later = stack.publish("orders.eu")
    [seen] = receiver.wait("/witness", 1)
    assert json.loads(seen.body)["id"] == later
    assert len(stack.deliveries(sub)) == 1
    assert len(receiver.at("/gone")) == 1
    # retried while the subscription is disabled: failed at once, an attempt like any other
    assert stack.client.post(f"/v1/deliveries/{record['id']}/retry").status_code == 202
    [again] = stack.wait_for(
        "the retry to be recorded",
        lambda: [d for d in stack.deliveries(sub, "failed") if len(d["attempts"]) == 2] or None,
    )
    last = again["attempts"][-1]
    assert last["outcome"] == "failed" and last["error"] == "subscription disabled"
    assert last["duration_ms"] == 0 and last["at"]
    assert len(receiver.at("/gone")) == 1


def test_429_honours_retry_after(stack: Stack, receiver: Receiver) -> None:
    sub = webhook(stack, receiver, "/busy")
    receiver.answer("/busy", Answer(429, headers=(("retry-after", "2"),)))
    stack.publish("orders.eu")
    first, second = receiver.wait("/busy", 2, timeout=15)
    assert second.at - first.at >= 1.9  # not the 0.2 s of the schedule
    [record] = stack.wait_status(sub, "delivered")
    assert record["attempts"][0]["status_code"] == 429


def test_a_hanging_receiver_times_out_and_is_retried(stack: Stack, receiver: Receiver) -> None:
    sub = webhook(stack, receiver, "/hang")
    receiver.answer("/hang", Answer(200, delay=5))
    stack.publish("orders.eu")
    [record] = stack.wait_status(sub, "delivered")
    first, second = record["attempts"]
    assert first["outcome"] == "retry"
    assert "timed out" in first["error"]
    assert 900 <= first["duration_ms"] < 2500
    assert second["outcome"] == "delivered"


def test_exhausted_retries_fail_then_manual_retry(stack: Stack, receiver: Receiver) -> None:
    sub = webhook(stack, receiver, "/down")
    receiver.answer("/down", default=Answer(500))
    stack.publish("orders.eu")
    [record] = stack.wait_status(sub, "failed")
    assert len(record["attempts"]) == 4  # the first try and three retries
    assert record["next_attempt_at"] is None
    # every failed attempt is logged once with its reason, the final failure as an error
    reason = record["attempts"][0].get("error") or "answered 500"
    lines = [
        line for p in stack.procs for line in p.log_text().splitlines() if record["id"] in line
    ]
    retried = [line for line in lines if " WARNING " in line and "next attempt in" in line]
    assert len(retried) == 3 and all(f"failed: {reason};" in line for line in retried), lines
    final = [line for line in lines if " ERROR " in line]
    assert len(final) == 1 and f"failed for good after 4 attempt(s): {reason}" in final[0], lines
    receiver.answer("/down", default=Answer(204))
    r = stack.client.post(f"/v1/deliveries/{record['id']}/retry")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    [done] = stack.wait_status(sub, "delivered")
    assert done["id"] == record["id"]
    assert done["attempts"][-1]["status_code"] == 204
    assert stack.client.post(f"/v1/deliveries/{record['id']}/retry").status_code == 409
    assert len({r.webhook_id for r in receiver.at("/down")}) == 1


def test_a_malformed_replay_request_is_dropped_and_the_next_one_served(
    stack: Stack, receiver: Receiver
) -> None:
    """A replay request written to Redis by something other than the API would fail
    on every claim: it is dropped with an error line, and the queue moves on."""
    sub = webhook(stack, receiver, "/poison")
    first = stack.publish("orders.eu", data={"n": 1})
    receiver.wait("/poison", 1)
    with redis.Redis.from_url(str(stack.env["NOTIFY_REDIS_URL"])) as r:
        r.xadd(keys.REPLAYS, {"sub": sub})  # no "after", no "until"
    ok = stack.client.post(f"/v1/subscriptions/{sub}/replay", json={"after": "0-0"})
    assert ok.status_code == 202, ok.text
    assert [json.loads(g.body)["id"] for g in receiver.wait("/poison", 2)] == [first, first]
    log = stack.procs[0].log_text()
    assert "dropped: KeyError" in log and "replay failed" not in log


async def test_entries_notify_did_not_write_are_skipped_by_every_reader(
    stack: Stack, receiver: Receiver
) -> None:
    """Anything with write access can XADD to the log. Entries without a channel, a
    type or an envelope, or with a channel that is not UTF-8, are passed over by the
    gateway's reader, history and the dispatcher; they must not wedge them."""
    token = stack.client.headers["authorization"].removeprefix("Bearer ")
    webhook(stack, receiver, "/foreign")
    async with sse(stack.gateway.base_url, ["orders.>"], token) as s:
        with redis.Redis.from_url(str(stack.env["NOTIFY_REDIS_URL"])) as r:
            r.xadd(keys.LOG, {"foo": "bar"})
            r.xadd(keys.LOG, {"c": "orders.x", "b": "{}"})
            r.xadd(keys.LOG, {"c": "orders.x", "t": "t", "o": "", "b": "not an envelope"})
            r.xadd(keys.LOG, {"c": b"orders.\xff", "t": "t", "o": "", "b": b'{"channel":"x"}'})
        good = await asyncio.to_thread(stack.publish, "orders.eu")
        assert [f.id for f in await s.events(1)] == [good]
    assert [json.loads(g.body)["id"] for g in receiver.wait("/foreign", 1)] == [good]
    page = stack.client.get("/v1/events", params={"channel": "orders.>"})
    assert page.status_code == 200, page.text
    assert [e["id"] for e in page.json()["events"]] == [good]
    assert stack.client.get("/readyz").status_code == 200
    await asyncio.sleep(0.5)
    assert len(receiver.at("/foreign")) == 1
    for proc in (stack.gateway, stack.procs[0]):
        assert "Traceback" not in proc.log_text(), proc.log_tail()


def test_replay_redelivers_under_the_same_ids(stack: Stack, receiver: Receiver) -> None:
    before = stack.publish("orders.eu", data={"n": 0})  # older than the subscription
    sub = webhook(stack, receiver, "/replay")
    ids = [stack.publish("orders.eu", data={"n": n}) for n in range(1, 4)]
    receiver.wait("/replay", 3)
    delivered = stack.wait_status(sub, "delivered", 3)
    assert {d["event_id"] for d in delivered} == set(ids)
    r = stack.client.post(f"/v1/subscriptions/{sub}/replay", json={"after": before})
    assert r.status_code == 202, r.text
    got = receiver.wait("/replay", 6)
    assert {g.webhook_id for g in got} == {d["id"] for d in delivered}
    # nothing can follow the last possible id: an empty replay, not a request that
    # fails in the dispatcher and holds up the ones behind it
    last = f"{2**64 - 1}-{2**64 - 1}"
    r = stack.client.post(f"/v1/subscriptions/{sub}/replay", json={"after": last})
    assert r.status_code == 202, r.text
    r = stack.client.post(f"/v1/subscriptions/{sub}/replay", json={"after": "0-0"})
    assert r.status_code == 202
    receiver.wait("/replay", 10)
    assert "replay failed" not in stack.procs[0].log_text()
    records = stack.wait_status(sub, "delivered", 4)
    assert sorted(d["event_id"] for d in records) == sorted([before, *ids])
    bad = stack.client.post(f"/v1/subscriptions/{sub}/replay", json={"after": "yesterday"})
    assert bad.status_code == 400  # a malformed cursor, as everywhere
    assert bad.json()["field"] == "after"
    missing = stack.client.post(f"/v1/subscriptions/{sub}/replay", json={})
    assert missing.status_code == 422 and missing.json()["field"] == "after"


def test_rotation_signs_with_old_and_new_secrets(stack: Stack, receiver: Receiver) -> None:
    created = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url("/rot")})
    old = created["secret"]
    r = stack.client.post(f"/v1/subscriptions/{created['id']}/rotate-secret")
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new != old and new.startswith("whsec_")
    assert "secret" not in stack.client.get(f"/v1/subscriptions/{created['id']}").json()
    stack.publish("orders.eu")
    [got] = receiver.wait("/rot", 1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(got.body, got.headers)


def test_each_subscription_gets_its_own_record(stack: Stack, receiver: Receiver) -> None:
    a = webhook(stack, receiver, "/a", "orders.*")
    webhook(stack, receiver, "/b", "orders.eu")
    typed = stack.subscribe(
        "orders.>", {"kind": "webhook", "url": receiver.url("/typed")}, types=["order.paid"]
    )
    stack.publish("orders.eu", "order.created")
    stack.publish("orders.us", "order.paid")
    receiver.wait("/a", 2)
    receiver.wait("/b", 1)
    receiver.wait("/typed", 1)
    time.sleep(0.5)
    assert len(receiver.at("/b")) == 1
    assert json.loads(receiver.at("/typed")[0].body)["type"] == "order.paid"
    assert len(stack.wait_status(a, "delivered", 2)) == 2
    assert len(stack.wait_status(typed["id"], "delivered")) == 1


def test_webhooks_go_through_the_egress_proxy(
    stack_factory: StackFactory, receiver: Receiver
) -> None:
    with running_proxy() as proxy:
        stack = stack_factory(NOTIFY_WEBHOOK_PROXY=f"http://127.0.0.1:{proxy.port}")
        url = receiver.url("/proxied").replace("127.0.0.1", "localhost")
        sub = stack.subscribe("orders.>", {"kind": "webhook", "url": url})
        receiver.trust("/proxied", sub["secret"])
        stack.publish("orders.eu", "order.created", {"order": 1})
        [got] = receiver.wait("/proxied", 1)
        assert got.verified is True
        stack.wait_status(sub["id"], "delivered")
        # the tunnel went to the address the guard checked, not to the name
        assert proxy.tunnels and set(proxy.tunnels) <= {
            f"127.0.0.1:{receiver.port}",
            f"[::1]:{receiver.port}",
        }


def test_failures_across_subscriptions_are_listed_newest_first(
    stack: Stack, receiver: Receiver, make_token: TokenMaker
) -> None:
    subs = [webhook(stack, receiver, path) for path in ("/a", "/b")]
    for path in ("/a", "/b"):
        receiver.answer(path, default=Answer(500))
    first = stack.publish("orders.eu")
    for sub in subs:
        stack.wait_status(sub, "failed")
    second = stack.publish("orders.eu")
    for sub in subs:
        stack.wait_status(sub, "failed", count=2)

    def listing(client: httpx.Client, **params: object) -> dict[str, Any]:
        r = client.get("/v1/deliveries", params={"status": "failed", **params})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    page = listing(stack.client, limit=3)
    rest = listing(stack.client, limit=3, cursor=page["next"])
    assert rest["next"] is None
    listed = page["deliveries"] + rest["deliveries"]
    assert [d["event_id"] for d in listed] == [second, second, first, first]
    assert {d["subscription"] for d in listed} == set(subs)
    assert {d["status"] for d in listed} == {"failed"}

    def as_(token: str) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"}
        return httpx.Client(base_url=stack.gateway.base_url, headers=headers, trust_env=False)

    with as_(make_token("bob", subscribe=["orders.>"])) as bob:
        assert listing(bob)["deliveries"] == []  # only one's own
    with as_(make_token("ops", admin=True)) as admin:
        assert [d["id"] for d in listing(admin)["deliveries"]] == [d["id"] for d in listed]
    retried = stack.client.post(f"/v1/deliveries/{listed[0]['id']}/retry")
    assert retried.status_code == 202, retried.text
    assert [d["id"] for d in listing(stack.client)["deliveries"]] == [d["id"] for d in listed[1:]]
    unnamed = stack.client.get("/v1/deliveries")
    assert unnamed.status_code == 422
    assert unnamed.json()["field"] == "subscription"


CONNECT_RETRIES = 10
"""Retries for the connection-error test: 0.5 s apart, about 5 s in all (±20 %), enough
to see two refused attempts and start the receiver before they run out."""


def refused(attempt: dict[str, Any]) -> bool:
    """An attempt that found nothing listening: a connection error, no HTTP status."""
    error = str(attempt.get("error", ""))
    return error.startswith("ConnectFailed: cannot connect") and "status_code" not in attempt


def held(port: int) -> socket.socket:
    """A socket bound to a loopback port that does not listen: a connection there is
    refused, and nothing else can bind the port meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", port))
    return sock


def test_a_connection_error_is_retried_then_delivered_or_failed(
    stack_factory: StackFactory,
) -> None:
    """A webhook at a loopback port nothing listens on: each refused attempt is recorded
    as a connection error and retried; once a receiver listens there, the event arrives
    under the same id. At another port, never listened on: ``failed`` after the last
    retry."""
    stack = stack_factory(NOTIFY_RETRY_SCHEDULE=",".join(["0.5"] * CONNECT_RETRIES))
    late = Receiver()  # its port is chosen now, bound once it starts
    with held(late.port) as placeholder, held(free_port()) as never:
        sub = webhook(stack, late, "/late")
        nowhere = f"http://127.0.0.1:{never.getsockname()[1]}/never"
        dead = stack.subscribe("orders.>", {"kind": "webhook", "url": nowhere})["id"]
        event_id = stack.publish("orders.eu", "order.created", {"order": 1})

        def tried_twice() -> dict[str, Any] | None:
            """The record after two attempts (or once it ended sooner)."""
            found = stack.deliveries(sub)
            if found and (len(found[0]["attempts"]) >= 2 or found[0]["status"] != "pending"):
                return found[0]
            return None

        before: dict[str, Any] = stack.wait_for("two attempts", tried_twice)
        assert before["status"] == "pending", before
        assert before["event_id"] == event_id
        assert all(a["outcome"] == "retry" and refused(a) for a in before["attempts"]), before
        assert before["next_attempt_at"] is not None
        placeholder.close()
        late.start()
        try:
            [got] = late.wait("/late", 1)
        finally:
            late.stop()
        assert got.verified is True
        assert json.loads(got.body)["id"] == event_id
        [after] = stack.wait_status(sub, "delivered")
        assert after["id"] == before["id"] == got.webhook_id  # the same delivery, retried
        *failed, last = after["attempts"]
        assert len(failed) >= 2
        assert all(a["outcome"] == "retry" and refused(a) for a in failed), after
        assert last["outcome"] == "delivered" and last["status_code"] == 200

        [gave_up] = stack.wait_status(dead, "failed", timeout=20)
        outcomes = [a["outcome"] for a in gave_up["attempts"]]
        assert outcomes == ["retry"] * CONNECT_RETRIES + ["failed"], gave_up
        assert all(refused(a) for a in gave_up["attempts"]), gave_up
        assert gave_up["next_attempt_at"] is None
