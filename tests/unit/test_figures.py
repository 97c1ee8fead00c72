"""README figures with no other unit test, written here as literals: a change to the
constant behind one fails here, where the README's sentence is quoted.

*Delivery*: "At most 64 KiB of an answer is read and 256 characters stored."
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from notify import webhooks
from notify.errors import TransientDeliveryError
from notify.sinks.base import Job
from notify.sinks.webhook import WebhookSink, judge
from notify.subscriptions import Secret, Subscription

KIB_64 = 64 * 1024


class Receiver:
    """A keep-alive HTTP/1.1 receiver answering each request with the next answer."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.connections = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                writer.write(self.answers.pop(0))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver([])
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    yield state
    server.close()


def answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body


def job(port: int) -> Job:
    sub = Subscription(
        id="sub_1",
        user="alice",
        channel="a",
        types=(),
        sink={"kind": "webhook", "url": f"http://127.0.0.1:{port}/hook"},
        since_ms=0,
        created_at="2026-01-01T00:00:00.000Z",
        updated_at="2026-01-01T00:00:00.000Z",
        secrets=(Secret(webhooks.new_secret()),),
    )
    return Job("msg_1", sub, b'{"id":"1-0","channel":"a","type":"t","data":1}', 1)


@pytest.mark.parametrize(("size", "connections"), [(KIB_64, 1), (KIB_64 + 1, 2)])
async def test_at_most_64_kib_of_an_answer_is_read(
    receiver: Receiver, size: int, connections: int
) -> None:
    # an answer read to its end leaves its connection for the next request; one the
    # sink stopped reading (a byte over 64 KiB) cannot be reused
    receiver.answers = [answer(b"y" * size), answer(b"ok")]
    sink = WebhookSink(timeout=10, allow_private=True)
    try:
        first = await sink.deliver(job(receiver.port))
        second = await sink.deliver(job(receiver.port))
    finally:
        await sink.aclose()
    assert first.detail == "y" * 256  # what the attempt log keeps
    assert (first.status_code, second.status_code, second.detail) == (200, 200, "ok")
    assert receiver.connections == connections


def test_256_characters_of_a_failed_answer_are_stored() -> None:
    with pytest.raises(TransientDeliveryError) as info:
        judge(500, None, b"x" * 100_000, 0.0)
    assert str(info.value) == "HTTP 500: " + "x" * 256
    assert judge(204, None, b"", 0.0).detail is None
