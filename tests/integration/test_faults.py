"""Real faults: Redis stopped and restarted under open streams, clients that stop
reading, gateways killed with SIGKILL."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import time

import httpx
import pytest

from tests.integration.clients import publish, publish_batch, sse
from tests.support.factories import GatewayFactory, RedisFactory, TokenMaker
from tests.support.procs import Gateway

pytestmark = pytest.mark.asyncio


async def test_redis_restart_under_open_streams_loses_nothing(
    redis_factory: RedisFactory, gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    redis = redis_factory(appendonly=True, appendfsync="always")
    gw = gateway_factory(redis_url=redis.url)
    token = make_token(publish=[">"], subscribe=[">"])
    async with sse(gw.base_url, ["f.>"], token) as s:
        before = await asyncio.to_thread(
            publish_batch,
            gw.base_url,
            token,
            [{"channel": "f.a", "type": "t", "data": i} for i in range(5)],
        )
        assert [f.id for f in await s.events(5)] == before
        await asyncio.to_thread(redis.stop)
        async with httpx.AsyncClient(base_url=gw.base_url, trust_env=False) as c:
            down = await c.post(
                "/v1/events",
                json={"channel": "f.a", "type": "t", "data": 0},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert down.status_code == 503 and int(down.headers["Retry-After"]) >= 1
            assert down.headers["content-type"] == "application/problem+json"
            not_ready = await c.get("/readyz")
            assert not_ready.status_code == 503 and not_ready.headers["Retry-After"] == "1"
            assert not_ready.headers["content-type"] == "application/problem+json"
            assert not_ready.json()["status"] == 503
            assert "redis unreachable" in not_ready.json()["problems"]
        await asyncio.to_thread(redis.restart)
        after = await asyncio.to_thread(
            publish_batch,
            gw.base_url,
            token,
            [{"channel": "f.b", "type": "t", "data": i} for i in range(5)],
        )
        assert [f.id for f in await s.events(5, timeout=20)] == after
    async with httpx.AsyncClient(base_url=gw.base_url, trust_env=False) as c:
        assert (await c.get("/readyz")).status_code == 200
        history = (
            await c.get(
                "/v1/events",
                params={"channel": "f.>"},
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()
    assert [e["id"] for e in history["events"]] == before + after


def _raw_stream(port: int, token: str, cursor: str | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    headers = f"Last-Event-ID: {cursor}\r\n" if cursor else ""
    sock.sendall(
        f"GET /v1/stream?channel=slow&token={token} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode()
    )
    return sock


def _read_head(sock: socket.socket) -> bytes:
    """The response up to the stream's opening block (``retry:`` and ``id:``)."""
    sock.settimeout(10)
    data = b""
    while not re.search(rb"retry: 3000\nid: [0-9]+-[0-9]+\n\n", data):
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def _drain(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass  # a slow consumer's cut is a reset: what it holds is still read first
    finally:
        sock.close()
    return data


BATCHES = 40  # of 10 events of 50 kB: 20 MB, more than loopback socket buffers hold


# one limit at a time, the other out of reach: the queue limit with a send timeout
# longer than the test, the send timeout with a queue that holds the whole burst
@pytest.mark.parametrize(
    "limits",
    [
        {"NOTIFY_MAX_QUEUED": "20", "NOTIFY_SEND_TIMEOUT_SECONDS": "600"},
        {"NOTIFY_MAX_QUEUED": str(BATCHES * 10 * 2), "NOTIFY_SEND_TIMEOUT_SECONDS": "2"},
    ],
    ids=["queue limit", "send timeout"],
)
async def test_slow_consumer_is_disconnected_then_resumes_losing_nothing(
    gateway_factory: GatewayFactory, make_token: TokenMaker, limits: dict[str, str]
) -> None:
    gw = gateway_factory(**limits)
    token = make_token(publish=[">"], subscribe=[">"])
    async with (
        sse(gw.base_url, ["slow"], token) as healthy,
        httpx.AsyncClient(base_url=gw.base_url, trust_env=False) as c,
    ):
        stalled = _raw_stream(gw.port, token)
        head = await asyncio.to_thread(_read_head, stalled)  # the stream is open
        blob = "x" * 50000
        ids: list[str] = []
        reading = asyncio.create_task(healthy.events(BATCHES * 10, timeout=60))
        for _ in range(BATCHES):  # more than the stalled socket's buffers hold
            ids += await asyncio.to_thread(
                publish_batch,
                gw.base_url,
                token,
                [{"channel": "slow", "type": "t", "data": blob} for _ in range(10)],
            )
        # the healthy client, reading as it should, is not held back by the stalled one
        assert [f.id for f in await reading] == ids
        deadline = time.monotonic() + 20
        while not re.search(
            r"^notify_slow_consumer_disconnects_total [1-9]", (await c.get("/metrics")).text, re.M
        ):
            assert time.monotonic() < deadline, "the stalled client was never cut"
            await asyncio.sleep(0.1)
    cut_at = time.monotonic()
    received = head + await asyncio.to_thread(_drain, stalled, 3.0)
    # reset, not closed gracefully: what the kernel buffers for the stalled peer would
    # otherwise trickle to it for minutes
    assert time.monotonic() - cut_at < 30
    position = re.search(rb"retry: 3000\nid: ([0-9]+-[0-9]+)\n\n", received)
    assert position is not None, received[:100]
    first = re.findall(rb"\nid: ([0-9]+-[0-9]+)\ndata: ", received)
    got = [i.decode() for i in first]
    assert len(got) < len(ids), "the stalled client should have been cut off"
    assert got == ids[: len(got)]
    cursor = got[-1] if got else position[1].decode()
    async with sse(gw.base_url, ["slow"], token, last_event_id=cursor) as again:
        rest = [f.id for f in await again.events(len(ids) - len(got), timeout=30)]
    assert got + rest == ids


async def test_gateway_killed_and_restarted_client_resumes(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    a = gateway_factory()
    b = gateway_factory()
    token = make_token(publish=[">"], subscribe=[">"])
    async with sse(a.base_url, ["k"], token) as s:
        first = await asyncio.to_thread(publish, b.base_url, token, "k")
        assert (await s.next()).id == first
        await asyncio.to_thread(a.kill)
        with pytest.raises((EOFError, httpx.RemoteProtocolError, httpx.ReadError)):
            await s.next()
    meanwhile = [await asyncio.to_thread(publish, b.base_url, token, "k") for _ in range(3)]
    await asyncio.to_thread(a.start)
    async with sse(a.base_url, ["k"], token, last_event_id=first) as s:
        assert [f.id for f in await s.events(3)] == meanwhile


async def test_expired_token_closes_stream(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token(subscribe=[">"], ttl=2)
    started = time.monotonic()
    async with sse(gateway.base_url, ["e"], token) as s:
        assert await s.until_closed(timeout=10) == []
    assert time.monotonic() - started < 8


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_graceful_shutdown_ends_open_streams_promptly_and_exits_0(
    gateway: Gateway, make_token: TokenMaker, sig: signal.Signals
) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    async with sse(gateway.base_url, ["bye"], token) as s:
        first = await asyncio.to_thread(publish, gateway.base_url, token, "bye")
        assert (await s.next()).id == first
        started = time.monotonic()
        gateway.kill(sig)  # to its whole process group, as Ctrl-C in a terminal does
        code = await asyncio.to_thread(gateway.wait, 20.0)
        assert await s.until_closed(timeout=10) == []
    # a completed shutdown is a clean exit: not -15, nor a KeyboardInterrupt traceback
    assert code == 0, gateway.log_tail()
    assert "Application shutdown complete" in gateway.log_text()
    assert "Traceback" not in gateway.log_text()
    assert time.monotonic() - started < 5
