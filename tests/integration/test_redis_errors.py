"""Redis unable to serve (out of memory, loading, a read-only replica, stopped): every
endpoint, fast path and FastAPI route alike, answers the same 503 problem with
``Retry-After``, and the gateway serves again once Redis does. Real faults on a real
``redis-server``: ``maxmemory`` set tiny, ``REPLICAOF``, a slowed ``DEBUG RELOAD``."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from notify import keys
from tests.support.factories import GatewayFactory, RedisFactory, TokenMaker
from tests.support.procs import Gateway
from tests.support.redis import RedisServer

EVENT = {"channel": "orders.eu", "type": "created", "data": {"n": 1}}
SUB = {"channel": "orders.>", "sink": {"kind": "web"}}
Call = Callable[[httpx.Client], httpx.Response]

# the writes of each kind of endpoint: the fast path's publish, a FastAPI route's
# subscription store, the replay request stream
WRITES: dict[str, Call] = {
    "publish (fast path)": lambda c: c.post("/v1/events", json=EVENT),
    "batch (fast path)": lambda c: c.post("/v1/events/batch", json={"events": [EVENT]}),
    "subscribe (route)": lambda c: c.post("/v1/subscriptions", json=SUB),
}
READS: dict[str, Call] = {
    "history (route)": lambda c: c.get("/v1/events", params={"channel": "orders.>"}),
    "subscriptions (route)": lambda c: c.get("/v1/subscriptions"),
}


def client(gw: Gateway, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=gw.base_url,
        headers={"authorization": f"Bearer {token}"},
        trust_env=False,
        timeout=10,
    )


def assert_unavailable(r: httpx.Response, why: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["retry-after"] == "1"
    body = r.json()
    assert body["type"].endswith("/store-unavailable") and body["status"] == 503
    assert body["detail"] == f"event store unavailable: {why}"


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis(port=redis_server.port, host="127.0.0.1") as r:
        yield r


@pytest.fixture
def token(make_token: TokenMaker) -> str:
    return make_token("bob", publish=["orders.>"], subscribe=["orders.>"])


def test_out_of_memory_is_503_on_every_write(
    gateway: Gateway, admin: redis.Redis, token: str
) -> None:
    with client(gateway, token) as c:
        hook = {"kind": "webhook", "url": "https://hooks.example.com/in"}
        made = c.post("/v1/subscriptions", json={"channel": "orders.>", "sink": hook})
        sub = made.json()["id"]
        assert c.post("/v1/events", json=EVENT).status_code == 202
        admin.config_set("maxmemory", 1)
        try:
            writes = {
                **WRITES,
                "replay (route)": lambda c: c.post(
                    f"/v1/subscriptions/{sub}/replay", json={"after": "0-0"}
                ),
            }
            for name, call in writes.items():
                r = call(c)
                assert r.status_code == 503, name
                assert_unavailable(r, "out of memory")
            for name, call in READS.items():  # reads need no memory
                assert call(c).status_code == 200, name
        finally:
            admin.config_set("maxmemory", 0)
        # nothing refused was half-stored: the log holds the one event taken before
        assert admin.xlen(keys.LOG) == 1
        assert len(c.get("/v1/events", params={"channel": "orders.>"}).json()["events"]) == 1
        assert c.post("/v1/events", json=EVENT).status_code == 202


def test_a_read_only_replica_is_503_on_every_write(
    redis_factory: RedisFactory, gateway: Gateway, admin: redis.Redis, token: str
) -> None:
    master = redis_factory()
    with client(gateway, token) as c:
        assert c.post("/v1/events", json=EVENT).status_code == 202
        admin.replicaof("127.0.0.1", master.port)
        until(lambda: admin.info("replication")["master_link_status"] == "up")
        for name, call in WRITES.items():
            r = call(c)
            assert r.status_code == 503, name
            assert_unavailable(r, "read-only replica")
        admin.replicaof("NO", "ONE")
        assert c.post("/v1/events", json=EVENT).status_code == 202


def loading(port: int) -> bool:
    """Whether Redis answers a PING with LOADING (on a bare socket: redis-py would retry
    it, LOADING being a ConnectionError to it, until the load is over)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
        probe.sendall(b"*1\r\n$4\r\nPING\r\n")
        return probe.recv(64).startswith(b"-LOADING")


def test_loading_is_503_on_reads_and_writes(
    tmp_path: Path, gateway_factory: GatewayFactory, token: str
) -> None:
    server = RedisServer(tmp_path, extra=("--enable-debug-command", "local")).start()
    try:
        gw = gateway_factory(redis_url=server.url)
        with redis.Redis(port=server.port, host="127.0.0.1") as r, client(gw, token) as c:
            assert c.post("/v1/events", json=EVENT).status_code == 202
            # a data set that takes seconds to load: 6,000 keys at 1 ms each, and Redis
            # answering other clients (LOADING) every KB of the load
            r.execute_command("DEBUG", "POPULATE", 6000, "filler", 100)
            r.config_set("key-load-delay", 1000)
            r.config_set("loading-process-events-interval-bytes", 1024)
            reloading = socket.create_connection(("127.0.0.1", server.port))
            reloading.sendall(b"*2\r\n$5\r\nDEBUG\r\n$6\r\nRELOAD\r\n")
            try:
                until(lambda: loading(server.port))  # not before Redis says so itself
                for name, call in {**WRITES, **READS}.items():
                    resp = call(c)
                    assert resp.status_code == 503, name
                    assert_unavailable(resp, "loading its data")
            finally:
                reloading.settimeout(20)
                assert reloading.recv(64).startswith(b"+OK")
                reloading.close()
            r.config_set("key-load-delay", 0)
            assert c.post("/v1/events", json=EVENT).status_code == 202
    finally:
        server.kill()


def test_redis_stopped_is_503_on_fast_path_and_routes(
    gateway: Gateway, redis_server: RedisServer, token: str
) -> None:
    with client(gateway, token) as c:
        assert c.post("/v1/events", json=EVENT).status_code == 202
        assert redis_errors(c, "unreachable") == 0
        redis_server.stop()
        for name, call in {**WRITES, **READS}.items():
            r = call(c)
            assert r.status_code == 503, name
            assert_unavailable(r, "unreachable")
        # every one of them counted, by reason
        assert redis_errors(c, "unreachable") >= len(WRITES) + len(READS)


def redis_errors(c: httpx.Client, why: str) -> float:
    """``notify_redis_errors_total{reason=why}`` on the gateway's /metrics (0 if absent)."""
    found = re.search(
        rf'^notify_redis_errors_total{{reason="{why}"}} (\S+)$', c.get("/metrics").text, re.M
    )
    return float(found[1]) if found else 0.0


ANSWER_HEADERS = (
    "content-type",
    "retry-after",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "vary",
)


def test_fast_path_and_routes_answer_a_stopped_redis_alike(
    gateway_factory: GatewayFactory, redis_server: RedisServer, token: str
) -> None:
    """The same fault, the same answer to the byte: status, problem body and headers
    (``Retry-After``, and the CORS headers for an allowed origin, another one and
    none), from the fast path's publishing and from FastAPI routes."""
    gw = gateway_factory(NOTIFY_CORS_ORIGINS="https://app.example")
    with client(gw, token) as c:
        assert c.post("/v1/events", json=EVENT).status_code == 202
        redis_server.stop()
        for origin in ("https://app.example", "https://elsewhere.example", None):
            c.headers.pop("origin", None)
            if origin is not None:
                c.headers["origin"] = origin
            answers = {name: call(c) for name, call in {**WRITES, **READS}.items()}
            seen = {
                (r.status_code, r.content, tuple(r.headers.get(h) for h in ANSWER_HEADERS))
                for r in answers.values()
            }
            assert len(seen) == 1, (origin, {n: (r.headers, r.text) for n, r in answers.items()})
            r = answers["publish (fast path)"]
            assert_unavailable(r, "unreachable")
            assert r.headers["vary"] == "Origin"
            allowed = r.headers.get("access-control-allow-origin")
            assert allowed == (origin if origin == "https://app.example" else None)
