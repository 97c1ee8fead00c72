from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from notify.errors import (
    InvalidChannel,
    InvalidCursor,
    InvalidEvent,
    InvalidInput,
    NotifyError,
    TooLarge,
)
from notify.events import (
    MAX_ID_OVERHEAD,
    check_data,
    decode,
    draft,
    encode_draft,
    loads,
    now_rfc3339,
    parse_id,
    validate_type,
    with_id,
)

TIME = "2026-11-27T05:00:00.123Z"
LIMIT = 65536
MAX_ID = "18446744073709551615-18446744073709551615"


def ok(**fields: Any) -> dict[str, Any]:
    return {"channel": "orders.eu", "type": "order.created", "data": {"order": 17}, **fields}


def test_draft_encodes_the_envelope_without_id() -> None:
    result = draft(ok(origin="tab-7f3a"), max_bytes=LIMIT, time=TIME)
    assert (result.channel, result.type) == ("orders.eu", "order.created")
    assert result.body == (
        b'{"channel":"orders.eu","type":"order.created","data":{"order":17},'
        b'"time":"2026-11-27T05:00:00.123Z","origin":"tab-7f3a"}'
    )


@pytest.mark.parametrize(
    ("data", "encoded"),
    [
        (None, b"null"),
        (0, b"0"),
        ("", b'""'),
        ([], b"[]"),
        ({"text": 'a\nb"c\u2028'}, b'{"text":"a\\nb\\"c\xe2\x80\xa8"}'),
    ],
)
def test_draft_any_json_data(data: object, encoded: bytes) -> None:
    result = draft(ok(data=data), max_bytes=LIMIT, time=TIME)
    assert result.body == (
        b'{"channel":"orders.eu","type":"order.created","data":' + encoded + b',"time":"'
        + TIME.encode()
        + b'"}'
    )  # fmt: skip
    assert b"\n" not in result.body


def test_null_origin_is_no_origin() -> None:
    assert b"origin" not in draft(ok(origin=None), max_bytes=LIMIT, time=TIME).body


@pytest.mark.parametrize(
    ("raw", "error", "field"),
    [
        ([], InvalidEvent, "body"),
        ("event", InvalidEvent, "body"),
        (None, InvalidEvent, "body"),
        (ok(id="1-0"), InvalidEvent, "id"),
        (ok(time=TIME), InvalidEvent, "time"),
        (ok(zz=1, extra=2), InvalidEvent, "extra"),
        ({"type": "t", "data": 1}, InvalidEvent, "channel"),
        (ok(channel=""), InvalidChannel, "channel"),
        (ok(channel="orders.*"), InvalidChannel, "channel"),
        (ok(channel="a..b"), InvalidChannel, "channel"),
        (ok(channel=7), InvalidChannel, "channel"),
        ({"channel": "c", "data": 1}, InvalidEvent, "type"),
        (ok(type=""), InvalidEvent, "type"),
        (ok(type="a b"), InvalidEvent, "type"),
        (ok(type="a/b"), InvalidEvent, "type"),
        (ok(type="t" * 129), InvalidEvent, "type"),
        (ok(type=None), InvalidEvent, "type"),
        (ok(type=5), InvalidEvent, "type"),
        (ok(type="é"), InvalidEvent, "type"),
        (ok(type="t\n"), InvalidEvent, "type"),
        ({"channel": "c", "type": "t"}, InvalidEvent, "data"),
        (ok(data=2**64), InvalidEvent, "data"),
        (ok(data={1: "non-string key"}), InvalidEvent, "data"),
        (ok(data={1, 2}), InvalidEvent, "data"),
        (ok(origin="o" * 129), InvalidEvent, "origin"),
        (ok(origin=5), InvalidEvent, "origin"),
        (ok(origin=["tab"]), InvalidEvent, "origin"),
    ],
)
def test_draft_errors_name_the_field(raw: object, error: type[NotifyError], field: str) -> None:
    with pytest.raises(error) as single:
        draft(raw, max_bytes=LIMIT, time=TIME)
    assert type(single.value) is error
    assert single.value.field == field
    with pytest.raises(error) as batched:
        draft(raw, max_bytes=LIMIT, time=TIME, index=3)
    assert batched.value.field == ("events[3]" if field == "body" else "events[3]." + field)


@pytest.mark.parametrize(
    "raw",
    [
        ok(type="t" * 128),
        ok(type="a.B:c-d_9"),
        ok(origin="o" * 128),
        ok(origin=""),
        ok(data=2**64 - 1),
        ok(data=-(2**63)),
    ],
)
def test_draft_accepts_limits(raw: dict[str, Any]) -> None:
    assert draft(raw, max_bytes=LIMIT, time=TIME).channel == "orders.eu"


def _body_size(data: str) -> int:
    return len(draft(ok(data=data), max_bytes=LIMIT, time=TIME).body)


@pytest.mark.parametrize("index", [None, 999])
def test_size_limit_counts_the_longest_id(index: int | None) -> None:
    prefix = "" if index is None else f"events[{index}]."
    limit = 1024
    fits = "x" * (limit - MAX_ID_OVERHEAD - _body_size(""))
    result = draft(ok(data=fits), max_bytes=limit, time=TIME, index=index)
    assert len(result.body) + MAX_ID_OVERHEAD == limit
    assert len(with_id(MAX_ID, result.body)) == limit
    with pytest.raises(TooLarge) as info:
        draft(ok(data=fits + "x"), max_bytes=limit, time=TIME, index=index)
    assert info.value.status == 413
    assert info.value.field == (prefix.rstrip(".") or None)
    assert "1025 bytes" in info.value.detail


def test_size_limit_counts_escapes_not_characters() -> None:
    quotes = '"' * 400  # 800 bytes once escaped
    with pytest.raises(TooLarge):
        draft(ok(data=quotes), max_bytes=800, time=TIME)


def test_encode_draft_matches_draft() -> None:
    direct = encode_draft("orders.eu", "order.created", {"order": 17}, None, max_bytes=LIMIT)
    assert direct.body.startswith(b'{"channel":"orders.eu","type":"order.created"')
    with pytest.raises(InvalidEvent) as info:
        encode_draft("c", "t", object(), None, max_bytes=LIMIT, prefix="events[0].")
    assert info.value.field == "events[0].data"


def test_with_id_puts_the_id_first() -> None:
    body = draft(ok(), max_bytes=LIMIT, time=TIME).body
    stored = with_id("1732683600000-0", body)
    assert stored == b'{"id":"1732683600000-0",' + body[1:]
    assert list(decode(stored)) == ["id", "channel", "type", "data", "time"]
    assert decode(stored) == {"id": "1732683600000-0", **orjson.loads(body)}


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("0-0", (0, 0)),
        ("1732683600000-0", (1732683600000, 0)),
        ("1732683600000-17", (1732683600000, 17)),
        ("007-01", (7, 1)),
        (MAX_ID, (2**64 - 1, 2**64 - 1)),
    ],
)
def test_parse_id(value: str, parsed: tuple[int, int]) -> None:
    assert parse_id(value) == parsed
    assert parse_id(f"{parsed[0]}-{parsed[1]}") == parsed


@pytest.mark.parametrize(
    "value",
    [
        "",
        "-",
        "1",
        "1-",
        "-1",
        "1-1-1",
        "a-b",
        "0x1-0",
        "+1-0",
        "-1-0",
        "1.5-0",
        " 1-0",
        "1-0 ",
        "1-0\n",
        "1_000-0",
        "$",
        "*",
        "1-*",
        "18446744073709551616-0",
        "0-18446744073709551616",
        "99999999999999999999-0",
        "1" * 21 + "-0",
        "1" * 100_000 + "-0",
        "1-0\x00",
    ],
)
def test_parse_id_rejects_absurd_cursors(value: str) -> None:
    with pytest.raises(InvalidCursor) as info:
        parse_id(value, field="after")
    assert info.value.field == "after"
    assert info.value.status == 400
    assert len(info.value.detail) < 200


@pytest.mark.parametrize("value", ["\u0661-\u0660", "\uff11\uff12-0", "1-\u0967"])
def test_parse_id_rejects_non_ascii_digits(value: str) -> None:
    with pytest.raises(InvalidCursor):
        parse_id(value)


@pytest.mark.parametrize("value", [None, 1, 1.0, b"1-0", ["1-0"], {"id": "1-0"}])
def test_parse_id_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidCursor) as info:
        parse_id(value)
    assert info.value.field == "last_event_id"


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 27, 5, 0, 0, 123456, tzinfo=UTC), "2026-11-27T05:00:00.123Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=UTC), "2026-01-02T03:04:05.999Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 0, tzinfo=UTC), "2026-01-02T03:04:05.000Z"),
    ],
)
def test_now_rfc3339(moment: datetime, text: str) -> None:
    assert now_rfc3339(moment) == text


def test_server_time_is_used_when_none_given() -> None:
    body = orjson.loads(draft(ok(), max_bytes=LIMIT).body)
    parsed = datetime.strptime(body["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 60


@pytest.mark.parametrize("value", ["t", "a.b", "x" * 128, "A:b-c_d.9"])
def test_validate_type_accepts(value: str) -> None:
    assert validate_type(value) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b'{"n":18446744073709551615}', {"n": 2**64 - 1}),
        (b'{"n":-9223372036854775808}', {"n": -(2**63)}),
        (b'{"n":1234567890123456789}', {"n": 1234567890123456789}),
        (b'{"n":"123456789012345678901234567890"}', {"n": "123456789012345678901234567890"}),
        (b'{"n":1.2345678901234567890123}', {"n": 1.2345678901234567}),
        (b'{"n":12345678901234567890e-10}', {"n": 1234567890.123456789}),
        ('{"n":"é", "m": 7}', {"n": "é", "m": 7}),
    ],
)
def test_loads_keeps_what_orjson_keeps_exactly(text: bytes | str, value: object) -> None:
    assert loads(text) == value


@pytest.mark.parametrize(
    "text",
    [
        b'{"n":18446744073709551616}',
        b'{"n":-9223372036854775809}',
        b"[123456789012345678901234567890]",
        '{"channel":"a","type":"t","data":{"deep":[1,[2,[99999999999999999999]]]}}',
    ],
)
def test_loads_refuses_integers_that_would_lose_precision(text: bytes | str) -> None:
    with pytest.raises(InvalidInput) as error:
        loads(text, "frame")
    assert error.value.field == "frame"
    assert "send it as a string" in error.value.detail


def test_loads_names_the_field_of_bad_json() -> None:
    with pytest.raises(InvalidInput) as error:
        loads(b"{nope", "frame")
    assert error.value.field == "frame" and "not valid JSON" in error.value.detail


@pytest.mark.parametrize(
    "data",
    [
        float("nan"),
        float("inf"),
        [1, {"a": -float("inf")}],
        2**64,
        -(2**63) - 1,
        {1: 2},
        {"t": (1, object())},
        {"s": {1, 2}},
        b"bytes",
    ],
)
def test_check_data_refuses_what_json_text_cannot_carry(data: object) -> None:
    with pytest.raises(InvalidEvent) as refused:
        check_data(data)
    assert refused.value.field == "data"


def test_check_data_refuses_cycles_and_deep_nesting() -> None:
    loop: list[object] = []
    loop.append(loop)
    deep: list[object] = []
    for _ in range(300):
        deep = [deep]
    for data in (loop, deep):
        with pytest.raises(InvalidEvent, match="deeply"):
            check_data(data)


@pytest.mark.parametrize(
    "data", [None, True, 0, -(2**63), 2**64 - 1, 1.5, "s", [1, [2]], {"a": {"b": (1,)}}]
)
def test_check_data_passes_plain_json(data: object) -> None:
    check_data(data)
