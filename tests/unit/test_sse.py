from __future__ import annotations

import orjson
import pytest

from notify.events import draft, with_id
from notify.sse import (
    KEEPALIVE,
    RETRY_MS,
    continue_frame,
    control_frame,
    event_frame,
    gap_frame,
    position_frame,
)


def test_preamble_and_keepalive() -> None:
    assert RETRY_MS == 3000
    assert position_frame("1732683600000-7") == b"retry: 3000\nid: 1732683600000-7\n\n"
    assert b"data" not in position_frame("0-0")  # no event fires; the last event id is set
    assert KEEPALIVE == b": keepalive\n\n"


def test_a_stream_cut_for_its_budget_says_come_back_at_once() -> None:
    # README: "with `retry: 100` and the position reached"; the next stream's first
    # frame sets 3000 again
    assert continue_frame("1732683600000-7") == b"retry: 100\nid: 1732683600000-7\n\n"
    assert parse_sse(continue_frame("7-2")) == [{"retry": "100", "id": "7-2"}]


@pytest.mark.parametrize(
    ("event_id", "envelope", "frame"),
    [
        ("1-0", b"{}", b"id: 1-0\ndata: {}\n\n"),
        (
            "1732683600000-0",
            b'{"id":"1732683600000-0","channel":"orders.eu"}',
            b'id: 1732683600000-0\ndata: {"id":"1732683600000-0","channel":"orders.eu"}\n\n',
        ),
        (
            "5-1",
            '{"t":"\u00e9\u2028"}'.encode(),
            b'id: 5-1\ndata: {"t":"\xc3\xa9\xe2\x80\xa8"}\n\n',
        ),
    ],
)
def test_event_frame(event_id: str, envelope: bytes, frame: bytes) -> None:
    assert event_frame(event_id, envelope) == frame
    assert b"event:" not in frame  # so EventSource.onmessage receives it


@pytest.mark.parametrize(
    ("name", "data", "frame"),
    [
        (
            "gap",
            {"reason": "history_expired"},
            b'event: gap\ndata: {"reason":"history_expired"}\n\n',
        ),
        ("x", None, b"event: x\ndata: null\n\n"),
        ("x", {"a": [1, "b\nc"]}, b'event: x\ndata: {"a":[1,"b\\nc"]}\n\n'),
    ],
)
def test_control_frame(name: str, data: object, frame: bytes) -> None:
    assert control_frame(name, data) == frame


@pytest.mark.parametrize(
    ("reason", "frame"),
    [
        (None, b'event: gap\ndata: {"reason":"history_expired"}\n\n'),
        ("trimmed", b'event: gap\ndata: {"reason":"trimmed"}\n\n'),
    ],
)
def test_gap_frame(reason: str | None, frame: bytes) -> None:
    assert (gap_frame() if reason is None else gap_frame(reason)) == frame


def parse_sse(stream: bytes) -> list[dict[str, str]]:
    """A minimal WHATWG event-stream parser: one dict of fields per dispatched frame."""
    frames: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for line in stream.decode().replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            if fields:
                frames.append(fields)
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = fields[name] + "\n" + value if name in fields else value
    return frames


@pytest.mark.parametrize(
    "data",
    [
        "line1\nline2\r\nline3\rend",
        {"nested": ["\n\n", "\r", ": not a comment", "data: fake"]},
        None,
        "\u2028\u2029\x00",
    ],
)
def test_a_real_event_is_one_whole_frame(data: object) -> None:
    body = draft({"channel": "c", "type": "t", "data": data}, max_bytes=65536).body
    envelope = with_id("7-3", body)
    stream = position_frame("7-2") + event_frame("7-3", envelope) + KEEPALIVE + gap_frame()
    frames = parse_sse(stream)
    assert frames[0] == {"retry": "3000", "id": "7-2"}  # no data: no blank message
    assert frames[1].keys() == {"id", "data"}
    assert frames[1]["id"] == "7-3"
    assert orjson.loads(frames[1]["data"])["data"] == data
    assert frames[2] == {"event": "gap", "data": '{"reason":"history_expired"}'}
    assert len(frames) == 3
