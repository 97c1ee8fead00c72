"""`pip install notify` (no server extra): the producer client imports and works without
FastAPI, uvicorn, Celery & co., reads NOTIFY_REDIS_URL, honours idempotency keys and
takes its limits from what the gateways advertise in Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from notify.publisher import Publisher
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import child_env
from tests.support.redis import RedisServer

SERVER_ONLY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "celery",
    "kombu",
    "pydantic",
    "pydantic_settings",
    "jwt",
    "aiosmtplib",
    "email_validator",
    "prometheus_client",
)

SCRIPT = f"""
import json, sys
for name in {SERVER_ONLY!r}:
    sys.modules[name] = None  # an import of any of them now fails
import notify
import notify.publisher
from notify.errors import TooLarge
publisher = notify.Publisher()  # NOTIFY_REDIS_URL
first = publisher.publish("pkg.a", "t", {{"n": 1}}, idempotency_key="order-17")
again = publisher.publish("pkg.a", "t", {{"n": 2}}, idempotency_key="order-17")
try:
    publisher.publish("pkg.a", "t", "x" * 2000)
    refused = False
except TooLarge:
    refused = True
client = notify.Client("http://127.0.0.1:1", "token")  # the consumer client imports too
print(json.dumps({{"first": first, "again": again, "refused": refused,
                  "seconds": publisher.retention.seconds}}))
"""


def test_the_clients_need_no_server_dependency(
    redis_server: RedisServer, gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    gateway = gateway_factory(NOTIFY_MAX_EVENT_BYTES="1024", NOTIFY_HISTORY_SECONDS="7200")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=child_env({"NOTIFY_REDIS_URL": redis_server.url}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["first"] == result["again"]  # the repeat stored nothing
    assert result["refused"]  # the gateway's 1024-byte limit, not the 64 KiB default
    assert result["seconds"] == 7200
    token = make_token(subscribe=[">"])
    r = httpx.get(
        gateway.url("/v1/events"),
        params={"channel": "pkg.>"},
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
    )
    assert [e["data"] for e in r.json()["events"]] == [{"n": 1}]


def test_arguments_win_over_the_advertised_limits(
    redis_server: RedisServer, gateway_factory: GatewayFactory
) -> None:
    gateway_factory(NOTIFY_MAX_EVENT_BYTES="1024")
    with Publisher(redis_server.url, max_event_bytes=4096) as pub:
        assert pub.publish("pkg.b", "t", "x" * 2000)
        assert pub.max_event_bytes == 4096 and pub.retention.seconds == 86400


def test_the_package_is_typed() -> None:
    import notify

    assert (Path(notify.__file__).parent / "py.typed").exists()
