"""WebSocket server frames built once per event: exact bytes at every length boundary."""

from __future__ import annotations

import orjson
import pytest
from websockets.frames import Frame, Opcode

from notify.api.hub import Hub, Subscriber
from notify.eventlog import Entry
from notify.wsframe import event_frame, payloads, text_frame


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", b"\x81\x00"),
        (b"hi", b"\x81\x02hi"),
        (b"x" * 125, b"\x81\x7d" + b"x" * 125),
        (b"x" * 126, b"\x81\x7e\x00\x7e" + b"x" * 126),
        (b"x" * 65535, b"\x81\x7e\xff\xff" + b"x" * 65535),
        (b"x" * 65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00" + b"x" * 65536),
    ],
    ids=["empty", "short", "125", "126", "65535", "65536"],
)
def test_text_frame_exact_bytes(payload: bytes, expected: bytes) -> None:
    assert text_frame(payload) == expected


@pytest.mark.parametrize("n", [0, 1, 124, 125, 126, 127, 65534, 65535, 65536, 70000])
def test_text_frame_is_what_websockets_would_send(n: int) -> None:
    payload = b"a" * n
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


def test_event_frame_wraps_the_envelope() -> None:
    envelope = b'{"id":"1-0","channel":"c","type":"t","data":{"s":"\xc3\xa9"}}'
    frame = event_frame(envelope)
    (payload,) = payloads(frame)
    assert orjson.loads(payload) == {"op": "event", "event": orjson.loads(envelope)}
    assert frame[:2] == bytes((0x81, len(payload)))


def test_payloads_splits_a_batch_at_every_boundary() -> None:
    parts = [b"x" * n for n in (0, 5, 125, 126, 65535, 65536, 3)]
    assert list(payloads(b"".join(text_frame(p) for p in parts))) == parts


def test_the_hub_writes_a_sockets_batch_in_one_write_of_shared_frames() -> None:
    hub = Hub(log=None)  # type: ignore[arg-type]  # fan_out never touches the log
    writes: dict[int, list[bytes]] = {0: [], 1: []}
    subs = []
    for i in (0, 1):
        sub = Subscriber("ws", max_queued=100)
        sub.direct = lambda data, i=i: writes[i].append(data) is None  # type: ignore[misc]
        hub.attach(sub, ["news"])
        subs.append(sub)
    entries = [
        Entry(id=f"{n}-0", channel="news", type="t", origin="", body=b'{"n":%d}' % n)
        for n in (1, 2)
    ]
    hub.fan_out(entries)
    assert len(writes[0]) == 1 and writes[0] == writes[1]
    messages = [orjson.loads(p) for p in payloads(writes[0][0])]
    assert [m["op"] for m in messages] == ["event", "event"]
    assert [m["event"]["id"] for m in messages] == ["1-0", "2-0"]
    assert subs[0].buf == [] and subs[1].buf == []
