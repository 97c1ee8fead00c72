"""Security under hostile conditions (issue 5): Redis with a password and over TLS for
every role, secrets kept out of logs, errors and metrics, the webhook SSRF guard
against DNS rebinding, embedded-IPv4 forms and redirects, and limits that hold
against floods of subscriptions and hostile JSON while other users carry on."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from notify.sinks.http import HttpPool, TargetRefused
from tests.integration.clients import sse
from tests.integration.conftest import StackFactory
from tests.integration.delivery_stack import Stack, make_stack
from tests.support.factories import GatewayFactory, RedisFactory, TokenMaker
from tests.support.procs import Gateway
from tests.support.smtp_server import SmtpServer
from tests.support.tls import TlsRedisServer, make_certificates
from tests.support.webhook_receiver import Answer, Receiver


def _round_trip(stack: Stack, receiver: Receiver, path: str) -> None:
    """Every role works: the gateway stores and streams, the dispatcher routes, the
    worker delivers a signed webhook."""
    created = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url(path)})
    receiver.trust(path, created["secret"])

    async def stream_one() -> str:
        token = str(stack.client.headers["authorization"]).removeprefix("Bearer ")
        async with sse(stack.gateway.base_url, ["orders.>"], token) as s:
            event_id = await asyncio.to_thread(stack.publish, "orders.tls", "t", {"n": 1})
            frame = await s.next(timeout=10)
            assert frame.id == event_id
            return event_id

    event_id = asyncio.run(stream_one())
    got = receiver.wait(path, 1, timeout=20)
    assert json.loads(got[0].body)["id"] == event_id and got[0].verified
    delivered = stack.wait_status(created["id"], "delivered", timeout=20)
    assert [d["event_id"] for d in delivered] == [event_id]


def test_redis_with_password_works_for_every_role(
    redis_factory: RedisFactory,
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    password = "pw-" + secrets.token_hex(16)
    server = redis_factory(password=password)
    stack = make_stack(gateway_factory, make_token, tmp_path, server.url)
    try:
        _round_trip(stack, receiver, "/pw")
        logs = stack.logs() + stack.gateway.log_text()
        assert password not in logs
    finally:
        stack.close()


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedisServer]:
    server = TlsRedisServer(tmp_path / "redis", make_certificates(tmp_path / "pki"))
    try:
        server.start()
    except RuntimeError as exc:
        # Debian's redis-server is built with TLS; a build without it cannot pass this
        raise AssertionError(
            "redis-server failed to start with TLS:\n" + server.log_text()[-2000:]
        ) from exc
    try:
        yield server
    finally:
        server.kill()


def test_redis_over_tls_works_for_every_role(
    tls_redis: TlsRedisServer,
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    url = tls_redis.url
    assert url.startswith("rediss://") and "ssl_ca_certs=" in url
    stack = make_stack(gateway_factory, make_token, tmp_path, url)
    try:
        _round_trip(stack, receiver, "/tls")
    finally:
        stack.close()


# --- secrets never leak ---------------------------------------------------------------


def test_secrets_never_appear_in_logs_errors_or_metrics(
    redis_factory: RedisFactory,
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
    jwt_secret: str,
    receiver: Receiver,
    smtp: SmtpServer,
    tmp_path: Path,
) -> None:
    redis_password = "rpw-" + secrets.token_hex(12)
    smtp_password = "spw-" + secrets.token_hex(12)
    server = redis_factory(password=redis_password)
    smtp_url = f"smtp://mailer:{smtp_password}@127.0.0.1:{smtp.port}?starttls=false"
    stack = make_stack(
        gateway_factory,
        make_token,
        tmp_path,
        server.url,
        NOTIFY_SMTP_URL=smtp_url,  # the test server offers no AUTH: every login fails
        NOTIFY_JWT_SECRET=jwt_secret,
        NOTIFY_RETRY_SCHEDULE="0.2",
        # uvicorn's access log, as `notify serve --access-log` turns it on: its request
        # lines carry the query string, so the query tokens below reach it redacted or not
        NOTIFY_ACCESS_LOG="true",
    )
    bodies: list[str] = []
    try:
        token = str(stack.client.headers["authorization"]).removeprefix("Bearer ")
        hook = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url("/bad")})
        webhook_secret = hook["secret"]
        receiver.answer("/bad", default=Answer(status=500, body=b"receiver says no"))
        mail = stack.subscribe("orders.>", {"kind": "email", "to": "x@example.com"})
        stack.publish("orders.leak", "t", {"n": 1})

        forged = make_token("alice", publish=[">"]).rsplit(".", 1)[0] + ".AAAA"
        expired = make_token("alice", publish=[">"], ttl=-60)
        base = stack.gateway.base_url
        with httpx.Client(base_url=base, trust_env=False, timeout=10) as c:
            for bad in (forged, expired, "garbage" + token[:20]):
                for r in (
                    c.post("/v1/events", json={}, headers={"authorization": f"Bearer {bad}"}),
                    c.get("/v1/stream", params={"channel": "orders.x", "token": bad}),
                    _with_cookie(base, bad),
                ):
                    assert r.status_code == 401, r.text
                    bodies.append(r.text + json.dumps(dict(r.headers)))
            r = c.get("/v1/stream", params={"channel": "secret.x", "token": token})
            assert r.status_code == 403
            bodies.append(r.text)
            bodies.append(
                c.post(
                    "/v1/events", content=b"{bad json", headers={"authorization": f"Bearer {token}"}
                ).text
            )

        stack.wait_status(hook["id"], "failed", timeout=20)
        stack.wait_status(mail["id"], "failed", timeout=30)
        for sub in (hook["id"], mail["id"]):
            bodies.append(json.dumps(stack.deliveries(sub)))
        with httpx.Client(base_url=base, trust_env=False, timeout=10) as c:
            bodies.append(c.get("/metrics").text)
            bodies.append(
                c.get(f"/v1/subscriptions/{hook['id']}", headers=stack.client.headers).text
            )
            bodies.append(c.get("/v1/subscriptions", headers=stack.client.headers).text)
        # a role refused at start-up for a bad setting must not echo it either
        broken = {**stack.env, "NOTIFY_SMTP_URL": f"smtp://u:{smtp_password}@127.0.0.1:notaport"}
        stack.env = broken
        refused = stack.role("dispatcher", name="refused")
        assert refused.wait(20) not in (None, 0), refused.log_tail()
        stack.env = {**broken, "NOTIFY_SMTP_URL": smtp_url}
        stack.env["NOTIFY_REDIS_URL"] = server.url.replace("redis://", "redis+bad://")
        refused2 = stack.role("worker", name="refused2")
        assert refused2.wait(20) not in (None, 0), refused2.log_tail()
    finally:
        stack.close()

    logs = stack.logs() + "\n" + stack.gateway.log_text()
    for proc in stack.procs:
        logs += proc.log_text()
    secrets_ = {
        "JWT secret": jwt_secret,
        "webhook secret": webhook_secret,
        "webhook secret body": webhook_secret.removeprefix("whsec_"),
        "SMTP password": smtp_password,
        "Redis password": redis_password,
        "token": token,
        "token signature": token.rsplit(".", 1)[1],
        "forged token signature": forged.rsplit(".", 1)[1] if len(forged) > 40 else token,
        "expired token": expired,
    }
    everything = logs + "\n".join(bodies)
    leaked = [name for name, value in secrets_.items() if value and value in everything]
    assert not leaked, f"{leaked} found in logs or responses"
    assert "receiver says no" in everything  # the failures were really exercised and recorded
    # every request with a query token was logged with its value replaced, the one not
    # shaped like a JWT too (notify/logs.py masks JWT-shaped text, redaction the rest)
    unauthorized = 'GET /v1/stream?channel=orders.x&token=[redacted] HTTP/1.1" 401'
    assert logs.count(unauthorized) == 3, logs[-3000:]
    assert 'GET /v1/stream?channel=secret.x&token=[redacted] HTTP/1.1" 403' in logs
    assert "garbage" + token[:20] not in logs


def _with_cookie(base: str, token: str) -> httpx.Response:
    with httpx.Client(base_url=base, trust_env=False, cookies={"notify_token": token}) as c:
        return c.get("/v1/subscriptions")


# --- the webhook SSRF guard -----------------------------------------------------------


class Resolver:
    """Stands in for DNS: each lookup pops the next answer (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int, **_: Any) -> list[Any]:
        self.calls.append(host)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [(0, 0, 0, "", (a, port)) for a in answer]


class Recorder:
    """Records the address each connection goes to and sends it to the local
    receiver instead (the "public" address of the test is not reachable)."""

    def __init__(self, real_port: int) -> None:
        self.connected: list[str] = []
        self._port = real_port

    async def __call__(self, host: str, port: int, **kw: Any) -> Any:
        self.connected.append(host)
        return await asyncio.open_connection("127.0.0.1", self._port, **kw)


def _guarded_pool(receiver: Receiver) -> tuple[HttpPool, Recorder]:
    # keep-alive off (no idle connection kept): every request connects, and so resolves
    pool = HttpPool(allow_private=False, max_connections=4, keepalive_expiry=0)
    recorder = Recorder(receiver.port)
    pool._open = recorder  # type: ignore[assignment]
    return pool, recorder


PUBLIC = "93.184.216.34"
LOOPBACK_FORMS = [
    "127.0.0.1",
    "127.5.6.7",
    "::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:7f00:1",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "64:ff9b::7f00:1",  # NAT64
    "2002:7f00:1::1",  # 6to4
    "fe80::1",
    "fc00::1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",  # cloud metadata, mapped
    "169.254.169.254",
    "0.0.0.0",
    "::",
]


@pytest.mark.asyncio
async def test_dns_rebinding_cannot_reach_loopback(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = Resolver([PUBLIC], ["127.0.0.1"])
    monkeypatch.setattr(anyio, "getaddrinfo", resolver)
    pool, recorder = _guarded_pool(receiver)
    url = f"http://rebind.test:{receiver.port}/r"
    assert (await pool.post(url, [], b"1", 100)).status == 200
    # the next connection resolves again: now to loopback
    with pytest.raises(TargetRefused, match="loopback"):
        await pool.post(url, [], b"2", 100)
    await pool.aclose()
    assert recorder.connected == [PUBLIC]  # checked and connected address are the same
    assert resolver.calls == ["rebind.test", "rebind.test"]  # one lookup per connection
    assert len(receiver.at("/r")) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", LOOPBACK_FORMS)
async def test_any_forbidden_address_in_an_answer_refuses_the_name(
    bad: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(anyio, "getaddrinfo", Resolver([PUBLIC, bad]))
    pool, recorder = _guarded_pool(receiver)
    with pytest.raises(TargetRefused):
        await pool.post(f"http://mixed.test:{receiver.port}/m", [], b"1", 100)
    literal = f"[{bad}]" if ":" in bad else bad
    with pytest.raises(TargetRefused):
        await pool.post(f"http://{literal}:{receiver.port}/m", [], b"1", 100)
    await pool.aclose()
    assert recorder.connected == []
    assert receiver.at("/m") == []


def test_webhook_to_a_name_that_resolves_to_loopback_is_refused_by_the_worker(
    stack_factory: StackFactory, receiver: Receiver
) -> None:
    """The gateway lets the URL in (it allows private targets), the worker does not:
    the check runs where the connection is made."""
    stack = stack_factory()
    for proc in stack.procs:
        proc.kill()
    stack.env["NOTIFY_ALLOW_PRIVATE_TARGETS"] = "0"
    for proc in stack.procs:
        proc.env = stack.env
        proc.start()
    paths = {"/name": receiver.url("/name").replace("127.0.0.1", "localhost")}
    paths |= {
        f"/v6{n}": f"http://[{form}]:{receiver.port}/v6{n}"
        for n, form in enumerate(["::ffff:127.0.0.1", "::ffff:7f00:1"])
    }
    subs = [
        stack.subscribe("orders.>", {"kind": "webhook", "url": url})["id"] for url in paths.values()
    ]
    stack.publish("orders.ssrf")
    for sub in subs:
        failed = stack.wait_status(sub, "failed", timeout=20)
        errors = {a.get("error", "") for a in failed[0]["attempts"]}
        assert all("loopback" in e for e in errors), errors
    for path in paths:
        assert receiver.at(path) == []


def test_redirect_to_loopback_is_not_followed(stack: Stack, receiver: Receiver) -> None:
    inside = receiver.url("/inside")
    receiver.answer("/out", default=Answer(status=302, headers=(("location", inside),)))
    sub = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url("/out")})["id"]
    stack.publish("orders.redirect")
    failed = stack.wait_status(sub, "failed", timeout=20)
    assert {a.get("status_code") for a in failed[0]["attempts"]} == {302}
    assert len(receiver.at("/out")) == len(failed[0]["attempts"]) == 4  # 1 + 3 retries
    assert receiver.at("/inside") == []


# --- floods and hostile bodies --------------------------------------------------------

LIMIT = 200
FLOOD = 1500


@pytest.mark.asyncio
async def test_subscription_flood_is_refused_past_the_limit_others_unaffected(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    gw = gateway_factory(NOTIFY_MAX_SUBSCRIPTIONS_PER_USER=str(LIMIT))
    mallory = {"authorization": f"Bearer {make_token('mallory', subscribe=['m.>'])}"}
    bob_token = make_token("bob", publish=["b.>"], subscribe=["b.>"])
    bob = {"authorization": f"Bearer {bob_token}"}
    statuses: dict[int, int] = {}
    details: set[str] = set()
    gate = asyncio.Semaphore(32)

    async with httpx.AsyncClient(base_url=gw.base_url, trust_env=False, timeout=30) as c:

        async def create(n: int) -> None:
            async with gate:
                r = await c.post(
                    "/v1/subscriptions",
                    json={"channel": f"m.{n}", "sink": {"kind": "web"}},
                    headers=mallory,
                )
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 409:
                details.add(r.json()["detail"])

        async with sse(gw.base_url, ["b.x"], bob_token) as stream:
            flood = asyncio.ensure_future(asyncio.gather(*(create(n) for n in range(FLOOD))))
            latencies = []
            for n in range(5):  # bob publishes and streams while the flood runs
                started = time.monotonic()
                r = await c.post(
                    "/v1/events", json={"channel": "b.x", "type": "t", "data": n}, headers=bob
                )
                assert r.status_code == 202
                frame = await stream.next(timeout=10)
                assert frame.id == r.json()["id"]
                latencies.append(time.monotonic() - started)
                r = await c.post(
                    "/v1/subscriptions",
                    json={"channel": f"b.{n}", "sink": {"kind": "web"}},
                    headers=bob,
                )
                assert r.status_code == 201, r.text
            await flood
        listed = (await c.get("/v1/subscriptions", headers=mallory)).json()
    assert statuses == {201: LIMIT, 409: FLOOD - LIMIT}, statuses  # exact, even when racing
    assert len(details) == 1 and str(LIMIT) in details.pop()
    assert len(listed["subscriptions"] if isinstance(listed, dict) else listed) <= LIMIT
    assert max(latencies) < 3.0, latencies


def _nested(depth: int) -> bytes:
    return b'{"channel":"h.x","type":"t","data":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.asyncio
async def test_hostile_json_gets_its_limit_and_others_carry_on(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    auth = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    huge = (
        b'{"events":['
        + b",".join([b'{"channel":"h.x","type":"t","data":"' + b"x" * 60000 + b'"}'] * 200)
        + b"]}"
    )

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(400):  # 20 MB without a Content-Length
            yield b" " * 50_000

    # one answer each: orjson writes at most 254 levels (data deeper is 422 on `data`)
    # and reads at most 1024 (a body deeper is 422 on `body`); size limits come first
    too_deep = "data is not encodable as JSON: Recursion limit reached"
    unreadable = "body is not valid JSON: depth limit exceeded"
    event_limit = "body is over the limit of 66560 bytes"  # NOTIFY_MAX_EVENT_BYTES + 1 KiB
    batch_limit = "body is over the limit of 8388608 bytes"  # NOTIFY_MAX_BATCH_BYTES
    cases: list[tuple[str, str, bytes | AsyncIterator[bytes], int, str]] = [
        ("nested 253", "/v1/events", _nested(253), 202, ""),
        ("nested 254", "/v1/events", _nested(254), 422, too_deep),
        ("nested 5000", "/v1/events", _nested(5000), 422, unreadable),
        ("nested 30000", "/v1/events", _nested(30000), 422, unreadable),
        ("nested 1e6", "/v1/events", _nested(1_000_000), 413, event_limit),
        (
            "nested batch",
            "/v1/events/batch",
            b'{"events":[' + _nested(20000) + b"]}",
            422,
            unreadable,
        ),
        (
            "nested subscription",
            "/v1/subscriptions",
            b'{"channel":"h.x","sink":' + b"[" * 20000 + b"]" * 20000 + b"}",
            422,
            unreadable,
        ),
        ("huge batch", "/v1/events/batch", huge, 413, batch_limit),
        ("chunked huge", "/v1/events/batch", chunks(), 413, batch_limit),
        (
            "huge event",
            "/v1/events",
            b'{"channel":"h.x","type":"t","data":"' + b"x" * 200_000 + b'"}',
            413,
            event_limit,
        ),
    ]
    async with (
        httpx.AsyncClient(base_url=gateway.base_url, trust_env=False, timeout=30) as c,
        sse(gateway.base_url, ["ok.x"], token) as stream,
    ):
        for name, path, body, status, detail in cases:
            r = await c.post(path, content=body, headers=auth)
            assert r.status_code == status, (name, r.status_code, r.text[:300])
            if status >= 400:
                assert r.headers["content-type"] == "application/problem+json", name
                problem = r.json()
                assert problem["status"] == status, name
                assert problem["detail"].startswith(detail), (name, problem["detail"])
            # the gateway stays healthy for everyone else after each one
            started = time.monotonic()
            ok = await c.post(
                "/v1/events", json={"channel": "ok.x", "type": "t", "data": name}, headers=auth
            )
            assert ok.status_code == 202
            assert (await stream.next(timeout=5)).id == ok.json()["id"]
            assert time.monotonic() - started < 2.0, name
        assert (await c.get("/healthz")).status_code == 200
    assert gateway.running
    assert "Traceback" not in gateway.log_text()
