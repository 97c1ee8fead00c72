"""A hung Redis (``kill -STOP``: connections accepted, nothing answered) must not hang
the gateway: every request that needs Redis answers the 503 problem with Retry-After
within a few seconds (``NOTIFY_REDIS_TIMEOUT_SECONDS``), and all is well after SIGCONT."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.factories import GatewayFactory, RedisFactory, TokenMaker
from tests.support.redis import RedisServer

TIMEOUT = 1.0
ANSWER_WITHIN = 4 * TIMEOUT  # a deadline per command, and a request makes a few


@pytest.fixture
def hung_redis(redis_factory: RedisFactory) -> Iterator[RedisServer]:
    server = redis_factory()
    yield server
    if server.pid is not None:  # never leave it stopped: teardown must be able to kill it
        os.kill(server.pid, signal.SIGCONT)


def _timed(client: httpx.Client, method: str, url: str, **kw: object) -> httpx.Response:
    started = time.monotonic()
    response = client.request(method, url, **kw)  # type: ignore[arg-type]
    took = time.monotonic() - started
    assert took < ANSWER_WITHIN, f"{method} {url} took {took:.1f} s"
    return response


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["content-type"] == "application/problem+json"


def test_hung_redis_gives_503_within_seconds_and_recovers(
    hung_redis: RedisServer, gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    gw = gateway_factory(redis_url=hung_redis.url, NOTIFY_REDIS_TIMEOUT_SECONDS=TIMEOUT)
    token = make_token(publish=[">"], subscribe=[">"])
    auth = {"Authorization": f"Bearer {token}"}
    event = {"channel": "h.a", "type": "t", "data": 1}
    with httpx.Client(base_url=gw.base_url, trust_env=False, timeout=30) as c:
        first = c.post("/v1/events", json=event, headers=auth)
        assert first.status_code == 202, first.text
        cursor = first.json()["id"]

        assert hung_redis.pid is not None
        os.kill(hung_redis.pid, signal.SIGSTOP)
        one = {**auth, "Idempotency-Key": "hung-1"}
        batch = {**auth, "Idempotency-Key": "hung-2"}
        _assert_unavailable(_timed(c, "POST", "/v1/events", json=event, headers=one))
        _assert_unavailable(
            _timed(c, "POST", "/v1/events/batch", json={"events": [event, event]}, headers=batch)
        )
        _assert_unavailable(_timed(c, "GET", "/v1/events", params={"channel": "h.>"}, headers=auth))
        _assert_unavailable(_timed(c, "GET", "/readyz"))
        # a stream that must read history before going live
        _assert_unavailable(
            _timed(
                c,
                "GET",
                "/v1/stream",
                params={"channel": "h.>"},
                headers={**auth, "Last-Event-ID": "0-0"},
            )
        )
        # the gateway itself stays responsive
        assert _timed(c, "GET", "/healthz").status_code == 200

        os.kill(hung_redis.pid, signal.SIGCONT)
        deadline = time.monotonic() + 10
        while (ready := c.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready.status_code == 200, ready.text
        # a timed-out write may still have been applied when Redis woke up: the
        # client's retry with its Idempotency-Key stores each event exactly once
        again = c.post("/v1/events", json=event, headers=one)
        assert again.status_code == 202, again.text
        again_batch = c.post("/v1/events/batch", json={"events": [event, event]}, headers=batch)
        assert again_batch.status_code == 202, again_batch.text
        history = c.get(
            "/v1/events", params={"channel": "h.>", "after": cursor}, headers=auth
        ).json()
        stored = sorted([again.json()["id"], *again_batch.json()["ids"]])
        assert [e["id"] for e in history["events"]] == stored
