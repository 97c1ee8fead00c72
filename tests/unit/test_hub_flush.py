"""The hub writes straight to a connection when it can, and through the connection's
own writer task when it cannot, without ever reordering or losing a frame."""

from __future__ import annotations

import asyncio

from notify.api import metrics
from notify.api.hub import KEEPALIVE, Hub, Subscriber
from notify.eventlog import Entry


class Transport:
    """Stands in for the transport behind a stream: accepts writes until told not to."""

    def __init__(self) -> None:
        self.open = True
        self.direct_writes: list[bytes] = []

    def __call__(self, data: bytes) -> bool:
        if not self.open:
            return False
        self.direct_writes.append(data)
        return True


def entry(n: int, channel: str = "news") -> Entry:
    return Entry(id=f"{n}-0", channel=channel, type="t", origin="", body=b'{"n":%d}' % n)


def hub() -> Hub:
    return Hub(log=None)  # type: ignore[arg-type]  # fan_out never touches the log


def test_one_write_per_batch_and_connection() -> None:
    h = hub()
    sub = Subscriber("sse", max_queued=100)
    sub.direct = transport = Transport()
    h.attach(sub, ["news"])
    h.fan_out([entry(1), entry(2), entry(3, "other")])
    assert len(transport.direct_writes) == 1
    assert transport.direct_writes[0].count(b"id: ") == 2
    assert sub.buf == []


def test_back_pressure_falls_back_to_the_writer_task_in_order() -> None:
    async def scenario() -> list[bytes]:
        h = hub()
        sub = Subscriber("sse", max_queued=100)
        transport = Transport()
        sub.direct = transport
        h.attach(sub, ["news"])
        via_task: list[bytes] = []

        async def send(data: bytes | str) -> None:
            # like uvicorn's send under back-pressure: wait for the transport to
            # drain, then write; the hub must not overtake this write meanwhile
            assert isinstance(data, bytes)
            await asyncio.sleep(0.01)
            transport.direct_writes.append(data)
            via_task.append(data)

        pump = asyncio.create_task(sub.pump(send))
        await asyncio.sleep(0)
        h.fan_out([entry(1)])  # direct
        transport.open = False
        h.fan_out([entry(2)])  # transport full: queued, the task writes it
        transport.open = True
        await asyncio.sleep(0)  # the task has taken entry 2 and is writing it
        h.fan_out([entry(3)])  # a write is in flight: must queue behind it
        await asyncio.sleep(0.05)
        h.fan_out([entry(4)])  # idle again: direct
        sub.close("done")
        await pump
        assert len(via_task) >= 1
        return transport.direct_writes  # every write, in the order it reached the peer

    writes = asyncio.run(scenario())
    ids = [line for w in writes for line in w.split(b"\n") if line.startswith(b"id: ")]
    assert ids == [b"id: 1-0", b"id: 2-0", b"id: 3-0", b"id: 4-0"]


def test_held_connection_is_flushed_on_release() -> None:
    h = hub()
    sub = Subscriber("sse", max_queued=100)
    sub.direct = transport = Transport()
    h.attach(sub, ["news"])
    sub.hold += 1
    h.fan_out([entry(1)])
    assert transport.direct_writes == []
    sub.release()
    assert len(transport.direct_writes) == 1


def test_overflow_closes_as_slow_consumer() -> None:
    h = hub()
    sub = Subscriber("sse", max_queued=2)
    sub.direct = transport = Transport()
    transport.open = False
    h.attach(sub, ["news"])
    h.fan_out([entry(1), entry(2), entry(3)])
    assert sub.closed and sub.reason == "slow_consumer"
    assert transport.direct_writes == []


def test_reader_builds_only_what_a_local_connection_wants() -> None:
    h = hub()
    assert not h.wants(b"news")  # no connection at all
    sub = Subscriber("sse", max_queued=100)
    sub.direct = transport = Transport()
    h.attach(sub, ["news.*"])
    assert h.wants(b"news.eu") and not h.wants(b"sport")
    h.attach(sub, ["sport"])  # a new pattern: earlier answers are forgotten
    assert h.wants(b"sport")
    h.detach(sub, ["news.*"])
    assert not h.wants(b"news.eu")
    # the reader passed entries it did not build: the cursor still moves past them
    h.fan_out([], "7-0")
    assert h.cursor == "7-0" and transport.direct_writes == []


def test_keepalives_are_not_counted_as_events_sent() -> None:
    """notify_events_sent_total counts events: a keepalive comment (written directly,
    or first in a batch the writer sends) is not one."""

    async def scenario() -> None:
        h = hub()
        sub = Subscriber("sse", max_queued=100)
        transport = Transport()
        sub.direct = transport
        h.attach(sub, ["news"])
        before = metrics._sent[0]
        sub.push(KEEPALIVE)
        assert transport.direct_writes == [KEEPALIVE]
        assert metrics._sent[0] == before
        transport.open = False  # the next keepalive waits for the writer task
        sub.push(KEEPALIVE)
        h.fan_out([entry(1), entry(2)])
        written: list[bytes] = []

        async def send(data: bytes | str) -> None:
            assert isinstance(data, bytes)
            written.append(data)

        await sub.drain(send)
        assert len(written) == 1
        assert written[0].startswith(KEEPALIVE) and written[0].count(b"id: ") == 2
        assert metrics._sent[0] == before + 2

    asyncio.run(scenario())
