"""Hostile input and faults against a real gateway and redis-server (issue 11, part 4)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.integration.clients import publish_batch
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import Gateway
from tests.support.redis import RedisServer

pytestmark = pytest.mark.asyncio


class LoggingGateway(Gateway):
    """A gateway with uvicorn's access log on."""

    @property
    def command(self) -> list[str]:
        return [*super().command, "--access-log"]


@pytest.fixture
def logging_gateway(
    redis_server: RedisServer, jwt_secret: str, tmp_path: Path
) -> Iterator[Gateway]:
    gateway = LoggingGateway(
        redis_url=redis_server.url, jwt_secret=jwt_secret, directory=tmp_path, name="logged"
    )
    try:
        yield gateway.start()
    finally:
        gateway.terminate()
        print(gateway.log_tail())


async def test_a_token_in_the_query_is_redacted_by_its_decoded_name(
    logging_gateway: Gateway, make_token: TokenMaker
) -> None:
    gw = logging_gateway
    token = make_token(subscribe=[">"])
    async with httpx.AsyncClient(base_url=gw.base_url, trust_env=False) as client:
        for name in ("token", "%74oken", "to%6Ben"):
            r = await client.get(f"/v1/events?channel=x&{name}={token}")
            assert r.status_code == 200, r.text  # it authenticates: the server decodes names
    ws_url = gw.base_url.replace("http://", "ws://") + f"/v1/ws?%74oken={token}"
    async with websockets.connect(ws_url) as conn:
        await conn.send('{"op":"ping","ref":1}')
        await conn.recv()
    await asyncio.sleep(0.5)
    text = gw.log_text()
    assert "/v1/events?channel=x&%74oken=[redacted]" in text  # the access log line
    assert "WebSocket /v1/ws?%74oken=[redacted]" in text
    assert token.split(".")[2] not in text


async def test_a_slow_consumer_cut_is_logged_at_info_and_counted(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    gw = gateway_factory(NOTIFY_MAX_QUEUED="5", NOTIFY_SEND_TIMEOUT_SECONDS="2")
    token = make_token(publish=["slow"], subscribe=["slow"])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gw.port))
    sock.sendall(f"GET /v1/stream?channel=slow&token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        for _ in range(40):  # never read: 10 MB fill the socket buffers, then the queue
            await asyncio.to_thread(
                publish_batch,
                gw.base_url,
                token,
                [{"channel": "slow", "type": "t", "data": "x" * 50000}] * 5,
            )
        async with httpx.AsyncClient(base_url=gw.base_url, trust_env=False) as client:
            for _ in range(100):
                metrics = (await client.get("/metrics")).text
                if re.search(r"notify_slow_consumer_disconnects_total [1-9]", metrics):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("no slow-consumer cut was counted")
        await asyncio.sleep(2.5)  # what the gateway does with the stuck connection
    finally:
        sock.close()
    text = gw.log_text()
    assert re.search(r"INFO.*slow consumer", text), text[-2000:]
    assert "ERROR" not in text, text[-2000:]


def _raw_request(port: int, head: bytes, chunk: int = 65536) -> bytes:
    """Send ``head`` (as much as the server takes) and read the answer to its end."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            for start in range(0, len(head), chunk):
                sock.sendall(head[start : start + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the whole head was sent: what the cap is for
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
        return answer


@pytest.mark.parametrize(
    "head",
    [
        # many small fields
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
        + b"\r\n",
        # one huge field, never finished (the reported attack sent ~100 MiB)
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 * 1024 * 1024),
        # fields that fit one by one but not together
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: %s\r\n" % (i, b"b" * 4000) for i in range(20))
        + b"\r\n",
        # a huge URL
        b"GET /healthz?" + b"q" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["count", "endless-field", "total-size", "url"],
)
async def test_an_oversized_head_gets_431_and_the_connection_closes(
    gateway: Gateway, head: bytes
) -> None:
    answer = await asyncio.to_thread(_raw_request, gateway.port, head)
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large", answer[:200]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in headers
    assert b"connection: close" in headers
    problem = json.loads(body)
    assert problem["status"] == 431 and problem["type"].endswith("/headers-too-large")
    # the recv loop above ended: the gateway closed the connection
    ok = await asyncio.to_thread(
        _raw_request,
        gateway.port,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fine: "
        + b"c" * 8000
        + b"\r\nConnection: close\r\n\r\n",
    )
    assert ok.startswith(b"HTTP/1.1 200 ")


async def test_503_answers_say_what_failed_not_where(
    redis_server: RedisServer, gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    redis_server.kill()
    try:
        async with httpx.AsyncClient(
            base_url=gateway.base_url,
            trust_env=False,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ) as client:
            answers = [
                await client.post("/v1/events", json={"channel": "a", "type": "t", "data": 1}),
                await client.get("/v1/events", params={"channel": "a"}),
                await client.get("/readyz"),
            ]
    finally:
        redis_server.start()
    port = str(redis_server.url.rsplit(":", 1)[1].split("/")[0])
    for r in answers:
        assert r.status_code == 503, r.text
        # the problem's `type` is the gateway's own public URL (NOTIFY_PUBLIC_URL), which
        # a client already knows; what must not appear is where Redis is
        said = {k: v for k, v in r.json().items() if k != "type"}
        assert "127.0.0.1" not in str(said) and port not in r.text, r.text
