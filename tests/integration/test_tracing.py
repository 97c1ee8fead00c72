"""Tracing one event end to end (OpenTelemetry), and the traceparent it carries.

Real processes throughout: gateway, dispatcher and Celery worker export their spans
over OTLP/HTTP to a local receiver that decodes them with opentelemetry-proto, and a
webhook receiver sees what a subscriber would.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from notify import Publisher
from tests.integration.clients import sse, ws, ws_recv
from tests.integration.conftest import StackFactory
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.otlp_receiver import OtlpReceiver, Span
from tests.support.procs import Gateway, child_env
from tests.support.redis import RedisServer
from tests.support.webhook_receiver import Receiver

TRACE_ENV = {"OTEL_BSP_SCHEDULE_DELAY": "100"}  # export within 0.1 s, not 5 s


def traceparent() -> tuple[str, str, str]:
    """A fresh sampled traceparent, its trace id and its span id."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    try:
        yield server
    finally:
        server.stop()


def history(gateway: Gateway, token: str, channel: str) -> list[dict[str, Any]]:
    r = httpx.get(
        gateway.url("/v1/events"),
        params={"channel": channel},
        headers={"authorization": f"Bearer {token}"},
        trust_env=False,
    )
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return events


def post(
    gateway: Gateway,
    token: str,
    path: str,
    body: Any,
    content_type: str = "application/json",
    **headers: str,
) -> httpx.Response:
    return httpx.post(
        gateway.url(path),
        content=json.dumps(body),
        headers={"authorization": f"Bearer {token}", "content-type": content_type, **headers},
        trust_env=False,
    )


def one(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{len(found)} {name} spans: {found}"
    return found[0]


async def test_one_trace_from_publish_to_the_webhook(
    stack_factory: StackFactory, receiver: Receiver, otlp: OtlpReceiver
) -> None:
    stack = stack_factory(OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint, **TRACE_ENV)
    sub = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url("/hook")})
    receiver.trust("/hook", sub["secret"])
    given, trace_id, parent_id = traceparent()
    token = stack.client.headers["authorization"].removeprefix("Bearer ")
    async with sse(stack.gateway.base_url, ["orders.>"], token) as stream:
        await stream.position()
        r = await asyncio.to_thread(
            stack.client.post,
            "/v1/events",
            json={"channel": "orders.eu", "type": "order.created", "data": {"n": 1}},
            headers={"traceparent": given},
        )
        assert r.status_code == 202, r.text
        event_id = r.json()["id"]
        frame = await stream.next()
    [hook] = await asyncio.to_thread(receiver.wait, "/hook", 1, 30.0)
    names = {"notify.publish", "notify.append", "notify.dispatch", "notify.deliver"}
    names.add("notify.fan_out")
    spans = await asyncio.to_thread(
        otlp.wait,
        f"spans {sorted(names)} of trace {trace_id}",
        lambda got: names <= {s.name for s in got if s.trace_id == trace_id},
    )
    traced = [s for s in spans if s.trace_id == trace_id]
    publish, append = one(traced, "notify.publish"), one(traced, "notify.append")
    dispatch, deliver = one(traced, "notify.dispatch"), one(traced, "notify.deliver")
    fan_out = one(traced, "notify.fan_out")

    # the producer's span -> publish -> append; dispatch, delivery and fan-out follow the
    # stored traceparent, which is the publish span's
    assert publish.parent_id == parent_id and publish.kind == "producer"
    assert append.parent_id == publish.span_id
    for child in (dispatch, deliver, fan_out):
        assert child.parent_id == publish.span_id, child
    stored = f"00-{trace_id}-{publish.span_id}-01"
    assert frame.json["traceparent"] == stored and frame.json["id"] == event_id
    assert history(stack.gateway, token, "orders.eu")[-1]["traceparent"] == stored

    assert {s.service for s in (publish, append, fan_out)} == {"notify-gateway"}
    assert dispatch.service == "notify-dispatcher" and deliver.service == "notify-worker"
    assert publish.attributes["messaging.message.id"] == event_id
    assert dispatch.attributes["messaging.message.id"] == event_id
    assert dispatch.attributes["notify.deliveries"] == 1
    assert fan_out.attributes["messaging.message.id"] == event_id
    [record] = stack.deliveries(sub["id"])
    assert deliver.kind == "client" and deliver.status != 2
    assert deliver.attributes == {
        "notify.sink": "webhook",
        "notify.delivery_id": record["id"],
        "notify.subscription_id": sub["id"],
        "notify.attempt": 1,
        "notify.outcome": "delivered",
        "http.response.status_code": 200,
    }
    # the receiver is told the delivery span's context, and the signature still holds
    assert hook.headers["traceparent"] == f"00-{trace_id}-{deliver.span_id}-01"
    assert hook.verified is True


async def test_a_failed_attempt_is_an_error_span_and_its_log_line_has_the_trace(
    stack_factory: StackFactory, receiver: Receiver, otlp: OtlpReceiver
) -> None:
    stack = stack_factory(
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint, NOTIFY_LOG_FORMAT="json", **TRACE_ENV
    )
    receiver.answer("/down", default=receiver_answer(503))
    stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url("/down")})
    given, trace_id, _ = traceparent()
    r = stack.client.post(
        "/v1/events",
        json={"channel": "orders.eu", "type": "t", "data": None},
        headers={"traceparent": given},
    )
    assert r.status_code == 202, r.text
    spans = await asyncio.to_thread(
        otlp.wait,
        "a failed delivery attempt",
        lambda got: any(s.name == "notify.deliver" and s.trace_id == trace_id for s in got),
    )
    attempt = next(s for s in spans if s.name == "notify.deliver" and s.trace_id == trace_id)
    assert attempt.status == 2 and attempt.status_message == "HTTP 503: ok"
    assert attempt.attributes["notify.outcome"] == "retry"
    assert attempt.attributes["http.response.status_code"] == 503

    def logged() -> list[dict[str, Any]]:
        text = "\n".join(p.log_text() for p in stack.procs if p.name.startswith("worker"))
        lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
        return [x for x in lines if "attempt 1 failed" in x.get("message", "")]

    [line] = stack.wait_for("the failed attempt's log line", logged)
    assert line["trace_id"] == trace_id and line["level"] == "WARNING"


def receiver_answer(status: int) -> Any:
    from tests.support.webhook_receiver import Answer

    return Answer(status)


async def test_every_way_in_stores_the_traceparent_and_a_webhook_gets_it_without_tracing(
    stack_factory: StackFactory,
    receiver: Receiver,
    redis_server: RedisServer,
    make_token: TokenMaker,
) -> None:
    stack = stack_factory()
    stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url("/plain")})
    gw = stack.gateway
    token = make_token(publish=[">"], subscribe=[">"])
    given = {way: traceparent()[0] for way in ("header", "batch", "ce", "ws", "sync", "async")}
    event = {"channel": "orders.a", "type": "t", "data": "header"}
    r = post(gw, token, "/v1/events", event, traceparent=given["header"])
    assert r.status_code == 202, r.text
    events = [{"channel": "orders.b", "type": "t", "data": "batch"} for _ in range(2)]
    r = post(gw, token, "/v1/events/batch", {"events": events}, traceparent=given["batch"])
    assert r.status_code == 202, r.text
    cloudevent = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/tests",
        "type": "t",
        "channel": "orders.c",
        "traceparent": given["ce"],  # the CloudEvents Distributed Tracing attribute
        "data": "ce",
    }
    r = post(gw, token, "/v1/events", cloudevent, "application/cloudevents+json")
    assert r.status_code == 202, r.text
    async with ws(gw.base_url, token) as conn:
        frame = {"op": "publish", "ref": 1, "channel": "orders.d", "type": "t", "data": "ws"}
        await conn.send(json.dumps({**frame, "traceparent": given["ws"]}))
        assert (await ws_recv(conn))["op"] == "ok"
    with Publisher(redis_server.url) as producer:
        producer.publish("orders.e", "t", "sync", traceparent=given["sync"])
        with pytest.raises(ValueError, match="not a W3C traceparent"):
            producer.publish("orders.e", "t", "bad", traceparent="00-abc-def-01")
    async_producer = Publisher(redis_server.url)
    try:
        await async_producer.apublish("orders.f", "t", "async", traceparent=given["async"])
    finally:
        await async_producer.aclose()

    stored = [(e["data"], e.get("traceparent")) for e in history(gw, token, "orders.>")]
    assert sorted(stored) == sorted([*given.items(), ("batch", given["batch"])])
    # tracing off: each webhook carries the stored traceparent on, unchanged
    hooks = await asyncio.to_thread(receiver.wait, "/plain", 7, 30.0)
    sent = [(json.loads(h.body)["data"], h.headers.get("traceparent")) for h in hooks]
    assert sorted(sent) == sorted(stored)


@pytest.mark.parametrize(
    "malformed",
    [
        "garbage",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",  # all-zero parent id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # upper case
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # 00 has no more
    ],
)
def test_a_malformed_traceparent_is_ignored(
    gateway: Gateway, make_token: TokenMaker, malformed: str
) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    r = post(
        gateway,
        token,
        "/v1/events",
        {"channel": "x", "type": "t", "data": 1},
        traceparent=malformed,
    )
    assert r.status_code == 202, r.text
    [event] = history(gateway, token, "x")
    assert "traceparent" not in event


def test_a_later_version_is_read_as_version_00(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next"
    r = post(
        gateway, token, "/v1/events", {"channel": "x", "type": "t", "data": 1}, traceparent=later
    )
    assert r.status_code == 202, r.text
    [event] = history(gateway, token, "x")
    assert event["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("tracing", [False, True])
async def test_tracing_off_leaves_the_traceparent_as_given_and_sends_nothing(
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
    otlp: OtlpReceiver,
    tracing: bool,
) -> None:
    # the same collector either way; off, because OTEL_SDK_DISABLED says so
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, **TRACE_ENV}
    if not tracing:
        env["OTEL_SDK_DISABLED"] = "true"
    gateway = gateway_factory(**env)
    token = make_token(publish=[">"], subscribe=[">"])
    given, trace_id, parent_id = traceparent()
    async with sse(gateway.base_url, ["x"], token) as stream:
        await stream.position()
        r = await asyncio.to_thread(
            post,
            gateway,
            token,
            "/v1/events",
            {"channel": "x", "type": "t", "data": 1},
            traceparent=given,
        )
        assert r.status_code == 202, r.text
        stored = (await stream.next()).json["traceparent"]
    if not tracing:
        assert stored == given
        await asyncio.sleep(1.0)  # ten export periods: nothing comes
        assert otlp.headers == []
        return
    assert stored.startswith(f"00-{trace_id}-") and stored != given
    spans = await asyncio.to_thread(
        otlp.wait,
        "the publish span",
        lambda got: any(s.name == "notify.publish" for s in got),
    )
    publish = one([s for s in spans if s.trace_id == trace_id], "notify.publish")
    assert publish.parent_id == parent_id and stored == f"00-{trace_id}-{publish.span_id}-01"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),  # no scheme
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
    ],
)
def test_a_malformed_tracing_variable_stops_a_role_at_start(
    redis_server: RedisServer, variable: str, value: str
) -> None:
    env = child_env(
        {
            "NOTIFY_REDIS_URL": redis_server.url,
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            variable: value,
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "notify", "dispatcher"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"{variable}: " in done.stderr and value in done.stderr
