"""The request deadline against slowloris clients, on a real gateway and redis-server.

A request, headers and body, must be read whole within ``NOTIFY_REQUEST_TIMEOUT_SECONDS``
of the connection becoming ready for it (opened, or its previous response complete). One
timer per process sweeps every connection once a second, so a late request is answered
``408`` and closed between its deadline and a second after it.

The module shares one gateway with a one-second deadline: each start costs more than a
second, and every test here already spends a few seconds waiting for the sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.integration.clients import publish, sse
from tests.support.factories import TokenMaker
from tests.support.procs import Gateway
from tests.support.redis import RedisServer

pytestmark = pytest.mark.asyncio

HOST = "127.0.0.1"
TIMEOUT = 1.0
"""The gateway's ``NOTIFY_REQUEST_TIMEOUT_SECONDS``."""
NOT_BEFORE = TIMEOUT - 0.1
"""No connection may be cut before its deadline (less a margin: the client sees a connection
become ready a little after the server does)."""
CLOSED_WITHIN = TIMEOUT + 1.0 + 2.0
"""The deadline, one sweep period, and slack for a loaded machine."""
KEEP_ALIVE = 5.0
"""uvicorn's keep-alive timeout, which ``notify serve`` leaves at its default."""
EVERY = 0.15
"""Seconds between two trickled bytes."""

now = time.monotonic


@pytest.fixture(scope="module")
def jwt_secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, jwt_secret: str) -> Iterator[Gateway]:
    """One ``notify serve`` with a one-second request deadline on a private redis-server."""
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    gateway: Gateway | None = None
    try:
        redis.start()  # (on a fresh port if the first is taken: the URL is known only now)
        gateway = Gateway(
            redis_url=redis.url,
            jwt_secret=jwt_secret,
            directory=tmp_path_factory.mktemp("gateway"),
            env={"NOTIFY_REQUEST_TIMEOUT_SECONDS": TIMEOUT},
        )
        yield gateway.start()
    finally:
        if gateway is not None:
            gateway.kill()
        redis.kill()


@pytest.fixture(autouse=True)
def log_on_failure(request: pytest.FixtureRequest, gateway: Gateway) -> Iterator[None]:
    """The shared gateway's log, printed at teardown under a failing test."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        print(f"----- {gateway.name} log (tail) -----\n{gateway.log_tail()}")


# --- raw HTTP/1.1 ---------------------------------------------------------------------


def request_head(method: str, target: str, **headers: object) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: x"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def publish_head(token: str, body: bytes) -> bytes:
    """The head of a ``POST /v1/events`` announcing ``body``."""
    return request_head(
        "POST",
        "/v1/events",
        Authorization=f"Bearer {token}",
        Content_Type="application/json",
        Content_Length=len(body),
    )


HEALTHZ = request_head("GET", "/healthz")
NEVER_ENDING_HEAD = b"GET /v1/stream?channel=calm HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 400
"""A request head that is never finished: a byte every ``EVERY`` s lasts a minute."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def parse_reply(raw: bytes) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    assert status_line.startswith("HTTP/1.1 "), raw[:200]
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(status_line.split()[1]), headers, body)


async def read_reply(reader: asyncio.StreamReader, timeout: float = 5.0) -> Reply:
    """One whole response with a ``content-length``."""
    async with asyncio.timeout(timeout):
        head = await reader.readuntil(b"\r\n\r\n")
        reply = parse_reply(head)
        reply.body = await reader.readexactly(int(reply.headers["content-length"]))
    return reply


def assert_timeout_reply(raw: bytes) -> None:
    """``raw`` is exactly one 408 problem, announcing the close."""
    assert raw.startswith(b"HTTP/1.1 408 "), raw[:200]
    reply = parse_reply(raw)
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["connection"] == "close"
    assert len(reply.body) == int(reply.headers["content-length"])
    problem = json.loads(reply.body)
    assert problem["status"] == 408 and problem["title"] and problem["detail"]
    assert problem["type"] == "http://127.0.0.1:8000/problems/request-timeout"  # NOTIFY_PUBLIC_URL


@dataclass
class Held:
    """How one slow client fared, timed from when the connection was ready for a request."""

    seconds: float | None
    """Until the server closed the connection; None if it was still open when we gave up."""
    received: bytes
    """All the server sent in that time."""


async def hold(
    port: int,
    trickled: bytes,
    *,
    sent_first: bytes = b"",
    answers_first: int = 0,
    every: float = EVERY,
    give_up: float = CLOSED_WITHIN,
) -> Held:
    """Connect, send ``sent_first`` and read ``answers_first`` whole responses to it, then
    send ``trickled`` a byte every ``every`` seconds until the server closes the
    connection or ``give_up`` seconds have passed (then stay silent until then)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    received: list[bytes] = []

    async def until_closed() -> float:
        try:
            while chunk := await reader.read(65536):
                received.append(chunk)
        except ConnectionError:
            pass
        return now()

    try:
        if sent_first:
            writer.write(sent_first)
            for _ in range(answers_first):
                await read_reply(reader)
        ready = now()
        closed = asyncio.create_task(until_closed())
        for byte in trickled:
            if closed.done() or writer.transport.is_closing() or now() - ready > give_up:
                break
            writer.write(bytes([byte]))
            await asyncio.wait([closed], timeout=every)
        await asyncio.wait([closed], timeout=max(0.0, ready + give_up - now()))
        if not closed.done():
            closed.cancel()
            await asyncio.gather(closed, return_exceptions=True)
            return Held(None, b"".join(received))
        return Held(closed.result() - ready, b"".join(received))
    finally:
        await close(writer)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


def assert_cut_on_time(held: Held) -> None:
    assert held.seconds is not None, (
        f"still open {CLOSED_WITHIN} s after the request began; received {held.received!r}"
    )
    assert NOT_BEFORE <= held.seconds <= CLOSED_WITHIN, held


def history(gw: Gateway, token: str, channel: str) -> list[dict[str, Any]]:
    r = httpx.get(
        gw.url("/v1/events"),
        params={"channel": channel},
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
    )
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return events


def event_body(channel: str, size: int) -> bytes:
    """A valid event for ``channel`` of exactly ``size`` bytes of JSON."""
    bare = json.dumps({"channel": channel, "type": "t", "data": ""}, separators=(",", ":"))
    pad = size - len(bare)
    assert pad >= 0
    return json.dumps(
        {"channel": channel, "type": "t", "data": "x" * pad}, separators=(",", ":")
    ).encode()


# --- requests that do not arrive in time ----------------------------------------------


async def test_headers_trickled_a_byte_at_a_time_get_408_and_the_connection_closed(
    gateway: Gateway,
) -> None:
    held = await hold(gateway.port, NEVER_ENDING_HEAD)
    assert_cut_on_time(held)
    assert_timeout_reply(held.received)


async def test_a_stalled_body_gets_408_and_nothing_is_stored(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    body = event_body("stalled", 200)
    head = publish_head(token, body)
    # the head and 120 of the 200 bytes of the body, then nothing
    held = await hold(gateway.port, b"", sent_first=head + body[:120])
    assert_cut_on_time(held)
    assert_timeout_reply(held.received)
    assert history(gateway, token, "stalled") == []
    marker = await asyncio.to_thread(publish, gateway.base_url, token, "stalled")
    assert [e["id"] for e in history(gateway, token, "stalled")] == [marker]


async def test_a_trickle_after_a_keep_alive_response_is_cut_on_time(gateway: Gateway) -> None:
    after_crlf, after_head = await asyncio.gather(
        hold(gateway.port, b"\r\n" * 100, sent_first=HEALTHZ, answers_first=1),
        hold(gateway.port, NEVER_ENDING_HEAD, sent_first=HEALTHZ, answers_first=1),
    )
    assert_cut_on_time(after_crlf)
    assert_cut_on_time(after_head)
    assert_timeout_reply(after_head.received)
    # no request had begun: a 408 is allowed, nothing else is
    if after_crlf.received:
        assert_timeout_reply(after_crlf.received)


async def test_an_idle_keep_alive_connection_is_closed_quietly_by_the_keep_alive_timeout(
    gateway: Gateway,
) -> None:
    """Nothing sent after a response: no request is late, so no unprompted 408 even with
    a deadline shorter than uvicorn's keep-alive timeout; that timeout closes it."""
    reader, writer = await asyncio.open_connection(HOST, gateway.port)
    try:
        writer.write(HEALTHZ)
        assert (await read_reply(reader)).status == 200
        idle = now()
        async with asyncio.timeout(KEEP_ALIVE + CLOSED_WITHIN):
            rest = await reader.read()
        assert rest == b"", rest
        assert now() - idle >= KEEP_ALIVE - 0.5  # not the deadline's doing
    finally:
        await close(writer)


SLOW_CLIENTS = 100
EVENTS = 60
PERIOD = 0.05
"""Seconds between two publishes: 60 events over 3 s."""


async def test_others_are_unaffected_measured(gateway: Gateway, make_token: TokenMaker) -> None:
    """100 slowloris connections at all times, each replaced as soon as the server closes
    it, while a stream receives what a publisher posts at a steady pace."""
    token = make_token(publish=[">"], subscribe=[">"])
    held: list[Held] = []
    open_now = peak = 0
    stop = asyncio.Event()

    async def slowloris(slot: int) -> None:
        nonlocal open_now, peak
        every = 0.1 + 0.1 * (slot % 10) / 10  # 0.10 .. 0.19 s
        while not stop.is_set():
            open_now += 1
            peak = max(peak, open_now)
            try:
                held.append(await hold(gateway.port, NEVER_ENDING_HEAD, every=every))
            finally:
                open_now -= 1

    sent_at: list[float] = []
    statuses: list[int] = []
    ids: list[str] = []

    async def publisher() -> None:
        async with httpx.AsyncClient(
            base_url=gateway.base_url,
            headers={"Authorization": f"Bearer {token}"},
            trust_env=False,
            timeout=10,
        ) as client:
            start = now()
            for i in range(EVENTS):
                await asyncio.sleep(max(0.0, start + i * PERIOD - now()))
                sent_at.append(now())
                r = await client.post(
                    "/v1/events", json={"channel": "calm", "type": "t", "data": i}
                )
                statuses.append(r.status_code)
                if r.status_code == 202:
                    ids.append(r.json()["id"])

    async with sse(gateway.base_url, ["calm"], token) as stream:
        crowd = [asyncio.create_task(slowloris(slot)) for slot in range(SLOW_CLIENTS)]
        try:
            await asyncio.sleep(0.3)  # the whole crowd is connected and trickling
            received: list[tuple[float, Any]] = []

            async def receive() -> None:
                while len(received) < EVENTS:
                    frame = await stream.next(timeout=10)
                    received.append((now(), frame))

            await asyncio.gather(publisher(), receive())
        finally:
            stop.set()
            ended = await asyncio.gather(*crowd, return_exceptions=True)

    latencies = [at - sent_at[frame.json["data"]] for at, frame in received]
    seconds = sorted(h.seconds for h in held if h.seconds is not None)
    print(
        f"\nnormal stream: {len(received)} events, publish-to-receive "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
        f"\nslowloris: {len(held)} connections, {peak} open at peak, held "
        f"min {seconds[0]:.2f} s, median {statistics.median(seconds):.2f} s, "
        f"max {seconds[-1]:.2f} s\nheld (s): {' '.join(f'{s:.2f}' for s in seconds)}"
    )
    assert [e for e in ended if e is not None] == []
    assert statuses == [202] * EVENTS
    assert [frame.id for _, frame in received] == ids
    assert [frame.json["data"] for _, frame in received] == list(range(EVENTS))
    assert peak == SLOW_CLIENTS and len(held) >= SLOW_CLIENTS
    for one in held:
        assert_cut_on_time(one)
        assert_timeout_reply(one.received)


# --- what arrives in time is never cut ------------------------------------------------


async def test_what_arrives_in_time_is_not_cut(gateway: Gateway, make_token: TokenMaker) -> None:
    """A stream outlives the deadline; a body that trickles in but completes in time is
    accepted; a keep-alive connection used promptly serves request after request."""
    token = make_token(publish=[">"], subscribe=[">"])

    async def long_stream() -> None:
        async with sse(gateway.base_url, ["long"], token) as stream:
            opened = now()
            got: list[str | None] = []
            sent: list[str] = []
            for at in (2.0, 2.5):
                await asyncio.sleep(max(0.0, opened + at - now()))
                sent.append(await asyncio.to_thread(publish, gateway.base_url, token, "long"))
                got.append((await stream.next(timeout=5)).id)
            assert got == sent
            assert now() - opened >= 2.5 > 2 * TIMEOUT

    async def slow_body() -> None:
        body = event_body("slow.body", 200)
        head = publish_head(token, body)
        reader, writer = await asyncio.open_connection(HOST, gateway.port)
        try:
            opened = now()
            writer.write(head)
            for i in range(0, 200, 50):  # the last part 0.45 s after the head
                await asyncio.sleep(0.15 if i else 0)
                writer.write(body[i : i + 50])
            assert now() - opened < TIMEOUT  # else this test means nothing
            reply = await read_reply(reader)
        finally:
            await close(writer)
        assert reply.status == 202, reply
        event_id = json.loads(reply.body)["id"]
        stored = await asyncio.to_thread(history, gateway, token, "slow.body")
        assert [e["id"] for e in stored] == [event_id]

    async def prompt_keep_alive() -> None:
        reader, writer = await asyncio.open_connection(HOST, gateway.port)
        try:
            opened = now()
            for _ in range(5):  # 0.5 s apart: 2 s on one connection
                writer.write(HEALTHZ)
                assert (await read_reply(reader)).status == 200
                await asyncio.sleep(0.5)
            assert now() - opened > 2 * TIMEOUT
        finally:
            await close(writer)

    await asyncio.gather(long_stream(), slow_body(), prompt_keep_alive())


# --- ways around the deadline that once worked ---------------------------------------------------


async def test_no_request_escapes_the_deadline(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    body = event_body("piped", 200)
    post = publish_head(token, body)

    async def after_an_early_answer() -> Held:
        """Answered 401 before its body was read; the body then arrives whole and the
        client falls silent. Neither the deadline nor uvicorn's keep-alive timeout (which
        the body's arrival cancelled) is left to end the connection."""
        unauthenticated = request_head(
            "POST", "/v1/events", Content_Type="application/json", Content_Length=20
        )
        reader, writer = await asyncio.open_connection(HOST, gateway.port)
        try:
            writer.write(unauthenticated)
            assert (await read_reply(reader)).status == 401
            ready = now()
            writer.write(b"x" * 20)
            async with asyncio.timeout(CLOSED_WITHIN):
                rest = await reader.read()
            return Held(now() - ready, rest)
        except TimeoutError:
            return Held(None, b"")
        finally:
            await close(writer)

    async def pipelined_behind_another() -> Held:
        """A POST pipelined behind a GET, its body trickled."""
        return await hold(
            gateway.port, body[10:], sent_first=HEALTHZ + post + body[:10], answers_first=1
        )

    early, piped = await asyncio.gather(after_an_early_answer(), pipelined_behind_another())
    assert early.seconds is not None, "idle after an early answer, never closed"
    assert piped.seconds is not None, "a pipelined body trickled past the deadline"
    assert piped.seconds <= CLOSED_WITHIN
    assert_timeout_reply(piped.received)
    assert history(gateway, token, "piped") == []
