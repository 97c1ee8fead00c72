"""CloudEvents in: modes, mapping onto the envelope, and errors naming the attribute."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from notify import cloudevents
from notify.errors import InvalidInput

CE = {"specversion": "1.0", "id": "a1", "source": "//src", "type": "order.created"}


def structured(raw: Any, query: bytes = b"") -> list[cloudevents.Incoming]:
    return cloudevents.parse("structured", {}, cloudevents.STRUCTURED, orjson.dumps(raw), query, 10)


@pytest.mark.parametrize(
    ("content_type", "has_headers", "expected"),
    [
        ("application/cloudevents+json; charset=utf-8", False, "structured"),
        ("Application/CloudEvents-Batch+JSON", False, "batch"),
        ("application/json", True, "binary"),
        (None, True, "binary"),
        ("application/json", False, None),
        (None, False, None),
    ],
)
def test_mode(content_type: str | None, has_headers: bool, expected: str | None) -> None:
    assert cloudevents.mode(content_type, has_headers) == expected


def test_structured_maps_type_and_data_and_keeps_the_rest() -> None:
    [e] = structured({**CE, "channel": "orders.eu", "data": {"n": 1}, "subject": "s", "tp": 7})
    assert (e.channel, e.type, e.data) == ("orders.eu", "order.created", {"n": 1})
    assert e.ce == {"specversion": "1.0", "id": "a1", "source": "//src", "subject": "s", "tp": 7}


def test_a_whole_number_written_with_a_fraction_is_an_integer() -> None:
    # 7.0 is an integer to JSON Schema and a whole number to CloudEvents
    [e] = structured({**CE, "channel": "c", "tp": 7.0})
    assert e.ce["tp"] == 7 and isinstance(e.ce["tp"], int)


def test_channel_from_the_query_and_base64_data() -> None:
    [e] = structured({**CE, "data_base64": "aGk="}, b"token=x&channel=orders.eu")
    assert (e.channel, e.data, e.ce["data_base64"]) == ("orders.eu", "aGk=", True)


def test_binary_mode() -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "b%201", "ce-source": "/s", "ce-type": "t.x"}
    [e] = cloudevents.parse(
        "binary", {**headers, "ce-channel": "c"}, "application/json", b'{"a":1}', b"", 10
    )
    assert (e.channel, e.type, e.data) == ("c", "t.x", {"a": 1})
    assert e.ce["id"] == "b 1" and e.ce["datacontenttype"] == "application/json"
    text_type = "text/plain; charset=utf-8"
    [text] = cloudevents.parse("binary", headers, text_type, "héllo".encode(), b"channel=c", 10)
    assert (text.data, text.ce["datacontenttype"]) == ("héllo", text_type)
    [raw] = cloudevents.parse("binary", headers, "image/png", b"\x89PNG", b"channel=c", 10)
    assert (raw.data, raw.ce["data_base64"]) == ("iVBORw==", True)


def test_idempotency_key_is_source_and_id() -> None:
    one = structured({**CE, "channel": "c"})
    same = structured({**CE, "channel": "d", "data": 1})
    other = structured({**CE, "id": "a2", "channel": "c"})
    assert cloudevents.idempotency_key(one) == cloudevents.idempotency_key(same)
    assert cloudevents.idempotency_key(one) != cloudevents.idempotency_key(other)
    assert len(cloudevents.idempotency_key(one)) < 255


def test_drafts_carry_the_attributes_on_the_envelope() -> None:
    events = structured({**CE, "channel": "c", "data": [1]})
    [d] = cloudevents.drafts(events, max_bytes=65536, time="T")
    assert orjson.loads(d.body) == {
        "channel": "c",
        "type": "order.created",
        "data": [1],
        "time": "T",
        "ce": {"specversion": "1.0", "id": "a1", "source": "//src"},
    }


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({k: v for k, v in CE.items() if k != "specversion"} | {"channel": "c"}, "specversion"),
        ({k: v for k, v in CE.items() if k != "id"} | {"channel": "c"}, "id"),
        ({k: v for k, v in CE.items() if k != "source"} | {"channel": "c"}, "source"),
        ({k: v for k, v in CE.items() if k != "type"} | {"channel": "c"}, "type"),
        ({**CE, "specversion": "0.3", "channel": "c"}, "specversion"),
        ({**CE, "id": "", "channel": "c"}, "id"),
        ({**CE, "channel": "c", "data_base64": "not base64!"}, "data_base64"),
        ({**CE, "channel": "c", "data_base64": 5}, "data_base64"),
        ({**CE, "channel": "c", "data_base64": "aGk=", "data": 1}, "data"),
        ({**CE, "channel": "a..b"}, "channel"),
        (CE, "channel"),
        ({**CE, "channel": "c", "type": "has space"}, "type"),
        ({**CE, "channel": "c", "Bad-Name": "x"}, "Bad-Name"),
        ({**CE, "channel": "c", "ext": {"nested": 1}}, "ext"),
        ([CE], "body"),
    ],
)
def test_errors_name_the_attribute(raw: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        structured(raw)
    assert caught.value.field == field
    assert caught.value.status == 422


def test_batch_errors_name_the_index() -> None:
    body = orjson.dumps([{**CE, "channel": "c"}, {**CE, "channel": "c", "specversion": "2"}])
    with pytest.raises(InvalidInput) as caught:
        cloudevents.parse("batch", {}, cloudevents.BATCH, body, b"", 10)
    assert caught.value.field == "events[1].specversion"
    with pytest.raises(InvalidInput) as caught:
        cloudevents.parse("batch", {}, cloudevents.BATCH, b"[]", b"", 10)
    assert caught.value.field == "events"
