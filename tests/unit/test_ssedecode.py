"""The SSE reader against notify's own frames and the WHATWG corner cases."""

from __future__ import annotations

from notify.sse import KEEPALIVE, event_frame, gap_frame, position_frame
from notify.ssedecode import Decoder, Frame


def frames(raw: bytes, start: str = "") -> tuple[list[Frame], Decoder]:
    decoder = Decoder(start)
    out = []
    for line in raw.decode().split("\n"):
        frame = decoder.feed(line)
        if frame is not None:
            out.append(frame)
    return out, decoder


def test_notify_frames() -> None:
    raw = (
        b"retry: 3000\nid: 5-0\n\n"
        + KEEPALIVE
        + event_frame("6-0", b'{"a":1}')
        + gap_frame()
        + event_frame("7-0", b'{"b":2}')
    )
    got, decoder = frames(raw)
    assert got == [
        Frame("message", '{"a":1}', "6-0"),
        Frame("gap", '{"reason":"history_expired"}', "6-0"),
        Frame("message", '{"b":2}', "7-0"),
    ]
    assert decoder.retry_ms == 3000 and decoder.last_event_id == "7-0"


def test_an_id_without_data_moves_the_cursor_only() -> None:
    got, decoder = frames(position_frame("9-1"), start="1-0")
    assert got == [] and decoder.last_event_id == "9-1"


def test_whatwg_details() -> None:
    got, _ = frames(b"data:x\ndata:  y\nfoo: bar\nid: a\0b\nevent: e\n\n")
    assert got == [Frame("e", "x\n y", "")]
