"""The monitoring sink when Alertmanager fails, end to end: a real gateway, dispatcher and
Celery worker posting to a receiver that plays a failing Alertmanager at
``{url}/api/v2/alerts`` (or to a port where nothing listens).

``AlertmanagerClient.post`` (``sinks/monitoring.py``): a 4xx answer other than 408 and
429 is permanent (the delivery ends ``failed`` after one attempt); 5xx, 408, 429, a
timeout and a connection error are transient (retried on ``NOTIFY_RETRY_SCHEDULE``, a
``Retry-After`` replacing the scheduled delay). An attempt's deadline is
``NOTIFY_WEBHOOK_TIMEOUT_SECONDS``, which the worker gives the Alertmanager client too.

One stack serves the whole module (its processes start once); each test has a channel
and a receiver path of its own, so their subscriptions never see each other's events.
"""

from __future__ import annotations

import email.utils
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.delivery_stack import Stack, make_stack
from tests.support.factories import token_maker
from tests.support.procs import Gateway
from tests.support.redis import RedisServer
from tests.support.webhook_receiver import Answer, Receiver

TIMEOUT = 1
"""Seconds: ``NOTIFY_WEBHOOK_TIMEOUT_SECONDS``, the deadline of one Alertmanager post."""
RETRIES = 3
"""``NOTIFY_RETRY_SCHEDULE`` is this many delays of 0.2 s: 4 attempts in all."""
ALERTS_API = "/api/v2/alerts"


@dataclass
class Scene:
    stack: Stack
    receiver: Receiver
    gateway: Gateway


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """Redis, gateway, dispatcher, one Celery worker and a receiver, shared by the module."""
    jwt_secret = secrets.token_urlsafe(32)
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    gateways: list[Gateway] = []
    stack: Stack | None = None
    receiver = Receiver()

    def gateway_factory(redis_url: str | None = None, **env: object) -> Gateway:
        gateway = Gateway(
            redis_url=redis_url or redis.url,
            jwt_secret=jwt_secret,
            directory=tmp_path_factory.mktemp("gateway"),
            env=env,
        )
        gateways.append(gateway)
        return gateway.start()

    try:
        redis.start()
        receiver.start()
        stack = make_stack(
            gateway_factory,
            token_maker(jwt_secret),
            tmp_path_factory.mktemp("stack"),
            redis.url,
            NOTIFY_WEBHOOK_TIMEOUT_SECONDS=TIMEOUT,
            NOTIFY_RETRY_SCHEDULE=",".join(["0.2"] * RETRIES),
        )
        yield Scene(stack, receiver, gateways[0])
    finally:
        if stack is not None:
            stack.close()
        for gateway in gateways:
            gateway.kill()
        receiver.stop()
        redis.kill()


@pytest.fixture(autouse=True)
def logs_on_failure(request: pytest.FixtureRequest, scene: Scene) -> Iterator[None]:
    """The shared processes' logs, printed at teardown under a failing test."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        print(scene.stack.logs())
        print(f"----- {scene.gateway.name} -----\n{scene.gateway.log_tail()}")


def monitoring(scene: Scene, channel: str, url: str) -> str:
    sub = scene.stack.subscribe(channel, {"kind": "monitoring", "url": url})
    return str(sub["id"])


def is_alert_post(body: bytes, alertname: str) -> bool:
    """An Alertmanager API v2 post of the one alert this event makes."""
    posted = json.loads(body)
    return [a["labels"]["alertname"] for a in posted] == [alertname]


def refused(attempt: dict[str, Any]) -> bool:
    """An attempt that found nothing listening: a connection error, no HTTP status."""
    error = str(attempt.get("error", ""))
    return error.startswith("ConnectFailed: cannot connect") and "status_code" not in attempt


def test_a_400_fails_the_delivery_at_once_with_its_status(scene: Scene) -> None:
    stack, receiver = scene.stack, scene.receiver
    path = "/bad" + ALERTS_API
    receiver.answer(path, default=Answer(400, body=b"bad alert: no labels"))
    sub = monitoring(scene, "alerts.mf.bad", receiver.url("/bad"))
    event_id = stack.publish("alerts.mf.bad", "disk.full", {"severity": "warning"})

    [record] = stack.wait_status(sub, "failed")
    assert record["event_id"] == event_id
    [only] = record["attempts"]
    assert only["outcome"] == "failed"
    assert only["status_code"] == 400
    assert only["error"] == "HTTP 400: bad alert: no labels"
    assert record["next_attempt_at"] is None
    [got] = receiver.at(path)
    assert got.headers["user-agent"] == "notify-alerts/1.0"
    assert is_alert_post(got.body, "disk.full")
    # not retried: nothing more arrives within several retry delays
    time.sleep(1.0)
    assert len(receiver.at(path)) == 1
    assert len(stack.deliveries(sub)[0]["attempts"]) == 1


def test_503_429_408_are_retried_and_retry_after_is_honoured(scene: Scene) -> None:
    """503 with ``Retry-After: 2``, then 429 and 408 (transient although 4xx), then 200:
    one delivery, posted four times, delivered at its last attempt."""
    stack, receiver = scene.stack, scene.receiver
    path = "/busy" + ALERTS_API
    receiver.answer(
        path,
        Answer(503, headers=(("retry-after", "2"),), body=b"overloaded"),
        Answer(429, body=b""),
        Answer(408, body=b""),
    )
    sub = monitoring(scene, "alerts.mf.busy", receiver.url("/busy"))
    event_id = stack.publish("alerts.mf.busy", "queue.stuck")

    [record] = stack.wait_status(sub, "delivered")
    assert record["event_id"] == event_id
    attempts = record["attempts"]
    assert [a["outcome"] for a in attempts] == ["retry", "retry", "retry", "delivered"], record
    assert [a["status_code"] for a in attempts] == [503, 429, 408, 200], record
    assert attempts[0]["error"] == "HTTP 503: overloaded"
    assert [a.get("error") for a in attempts[1:3]] == ["HTTP 429", "HTTP 408"]
    posts = receiver.at(path)
    assert len(posts) == 4
    assert all(is_alert_post(p.body, "queue.stuck") for p in posts)
    assert posts[1].at - posts[0].at >= 1.9  # Retry-After's 2 s, not the schedule's 0.2 s
    assert len(stack.deliveries(sub)) == 1  # the same delivery throughout


def test_retry_after_as_an_http_date_counts_from_now(scene: Scene) -> None:
    """``Retry-After`` may be an HTTP date: a 503 saying "3 s from now" is tried again
    in about 3 s (counted from time 0 it meant 56 years, capped at a day)."""
    stack, receiver = scene.stack, scene.receiver
    path = "/dated" + ALERTS_API
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    receiver.answer(path, Answer(503, headers=(("retry-after", when),), body=b"later"))
    sub = monitoring(scene, "alerts.mf.dated", receiver.url("/dated"))
    stack.publish("alerts.mf.dated", "queue.late")
    [record] = stack.wait_status(sub, "delivered")
    assert [a["status_code"] for a in record["attempts"]] == [503, 200], record
    first, second = receiver.at(path)
    assert 1.0 <= second.at - first.at < 6.0, second.at - first.at


def test_a_hanging_alertmanager_times_out_and_is_retried(scene: Scene) -> None:
    stack, receiver = scene.stack, scene.receiver
    path = "/hang" + ALERTS_API
    release = threading.Event()
    receiver.answer(path, Answer(200, release=release))  # the first post hangs
    sub = monitoring(scene, "alerts.mf.hang", receiver.url("/hang"))
    try:
        stack.publish("alerts.mf.hang", "web.slow")
        [record] = stack.wait_status(sub, "delivered")
    finally:
        release.set()
    first, second = record["attempts"]
    assert first["outcome"] == "retry"
    assert first["error"] == f"timed out after {TIMEOUT} s"
    assert "status_code" not in first
    assert 900 <= first["duration_ms"] < 2500
    assert second["outcome"] == "delivered" and second["status_code"] == 200
    assert len(receiver.at(path)) == 2


def test_a_refused_connection_is_retried_until_the_schedule_ends(scene: Scene) -> None:
    """An Alertmanager URL at a loopback port bound but not listening: every attempt is
    a connection error, retried, and the delivery fails only after the last retry."""
    stack = scene.stack
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}"
        sub = monitoring(scene, "alerts.mf.down", url)
        stack.publish("alerts.mf.down", "am.unreachable")
        [record] = stack.wait_status(sub, "failed")
    outcomes = [a["outcome"] for a in record["attempts"]]
    assert outcomes == ["retry"] * RETRIES + ["failed"], record
    assert all(refused(a) for a in record["attempts"]), record
    assert record["next_attempt_at"] is None
