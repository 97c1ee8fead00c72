"""notify.otlp's hand-written protobuf, read back with opentelemetry-proto (the message
definitions a collector uses): every field of every span as written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from notify.otlp import (
    HAS_IS_REMOTE,
    IS_REMOTE,
    NO_ATTRIBUTES,
    SAMPLED,
    Attributes,
    Encoder,
    Value,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
T0 = 1_717_171_717_123_456_789


@dataclass
class Ended:
    """An ended span as notify.tracing hands it to the encoder."""

    name: str
    kind: str = "internal"
    span_id: str = "00f067aa0ba902b7"
    parent_id: str = ""
    flags: int = SAMPLED | HAS_IS_REMOTE
    start_ns: int = T0
    end_ns: int = T0 + 1_500
    attributes: Attributes = field(default_factory=lambda: NO_ATTRIBUTES)
    error: str | None = None
    append_start: int = 0  # not a publish
    trace_id: str = TRACE


def typed(value: AnyValue) -> tuple[str, Any]:
    kind = value.WhichOneof("value")
    assert kind is not None
    return kind, getattr(value, kind)


def read(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return request


ODD: dict[str, Value] = {
    "text": "a short one",
    "long": "x" * 300,  # lengths of two bytes
    "unicode": "café ✓ 通知",  # counted in bytes, not characters
    "": "an empty key",
    "empty": "",
    "50%": "100% %s %c",  # the templates' own character
    "k" * 130: "a key beyond the template",
    "zero": 0,
    "small": 1,
    "two bytes": 300,
    "large": 70_000,
    "largest": 2**63 - 1,
    "negative": -5,
    "yes": True,
    "no": False,
    "half": 1.5,
    "whole": 1.0,
}
EXPECTED_ODD: dict[str, tuple[str, Any]] = {
    "text": ("string_value", "a short one"),
    "long": ("string_value", "x" * 300),
    "unicode": ("string_value", "café ✓ 通知"),
    "": ("string_value", "an empty key"),
    "empty": ("string_value", ""),
    "50%": ("string_value", "100% %s %c"),
    "k" * 130: ("string_value", "a key beyond the template"),
    "zero": ("int_value", 0),
    "small": ("int_value", 1),
    "two bytes": ("int_value", 300),
    "large": ("int_value", 70_000),
    "largest": ("int_value", 2**63 - 1),
    "negative": ("int_value", -5),
    "yes": ("bool_value", True),
    "no": ("bool_value", False),
    "half": ("double_value", 1.5),
    "whole": ("double_value", 1.0),
}


def test_every_field_of_every_span_reads_back() -> None:
    encoder = Encoder([("service.name", "notify-unit"), ("replicas", 3)], "notify")
    spans = [
        Ended("notify.deliver", "client"),  # a root: no parent_span_id
        Ended(
            "notify.publish",
            "producer",
            span_id="ffffffffffffffff",
            parent_id="0102030405060708",
            flags=SAMPLED | HAS_IS_REMOTE | IS_REMOTE,
            start_ns=2**64 - 2,
            end_ns=2**64 - 1,
            attributes=ODD,
            error="RuntimeError: boom ✗",
        ),
        Ended(
            "notify.fan_out",
            "consumer",
            attributes={"messaging.system": "notify", "huge": "y" * 20_000},  # 3-byte lengths
        ),
        Ended("notify.append", "server", parent_id="0000000000000001", flags=SAMPLED),
    ]
    for _ in range(2):  # made, then found made: the same bytes
        request = read(encoder.request(spans))
        [resource_spans] = request.resource_spans
        assert {a.key: typed(a.value) for a in resource_spans.resource.attributes} == {
            "service.name": ("string_value", "notify-unit"),
            "replicas": ("int_value", 3),
        }
        assert resource_spans.schema_url == ""
        [scope_spans] = resource_spans.scope_spans
        assert scope_spans.scope.name == "notify" and scope_spans.scope.version == ""
        got = scope_spans.spans
        assert len(got) == len(spans)
        for sent, span in zip(spans, got, strict=True):
            assert span.trace_id.hex() == TRACE and span.span_id.hex() == sent.span_id
            assert span.parent_span_id.hex() == sent.parent_id and span.trace_state == ""
            assert span.name == sent.name
            assert span.kind == {"internal": 1, "server": 2, "client": 3, "producer": 4}.get(
                sent.kind, 5
            )
            assert span.start_time_unix_nano == sent.start_ns
            assert span.end_time_unix_nano == sent.end_ns
            assert span.flags == sent.flags
            assert len(span.attributes) == len(sent.attributes)
            assert span.dropped_attributes_count == 0
            assert not span.events and not span.links
            if sent.error is None:
                assert span.status.code == 0 and span.status.message == ""
            else:
                assert (span.status.code, span.status.message) == (2, sent.error)
        assert {a.key: typed(a.value) for a in got[1].attributes} == EXPECTED_ODD
        assert [typed(a.value) for a in got[2].attributes] == [
            ("string_value", "notify"),
            ("string_value", "y" * 20_000),
        ]


def test_equal_values_of_other_types_stay_their_type() -> None:
    # 1, 1.0 and True are one dictionary key: what was made for one is not the other's
    encoder = Encoder([], "notify")
    spans = [Ended("s", attributes={"v": value}) for value in (1, True, 1.0, "1", 1, True)]
    [scope_spans] = read(encoder.request(spans)).resource_spans[0].scope_spans
    assert [typed(s.attributes[0].value) for s in scope_spans.spans] == [
        ("int_value", 1),
        ("bool_value", True),
        ("double_value", 1.0),
        ("string_value", "1"),
        ("int_value", 1),
        ("bool_value", True),
    ]


def test_a_full_batch_and_an_empty_one() -> None:
    encoder = Encoder([("service.name", "s")], "notify")
    spans = [
        Ended("notify.fan_out", span_id=f"{n:016x}", attributes={"n": n, "id": f"{n}-0"})
        for n in range(1, 513)
    ]
    body = encoder.request(spans)
    assert len(body) > 1 << 14  # the outer lengths take three bytes
    got = read(body).resource_spans[0].scope_spans[0].spans
    assert [int.from_bytes(s.span_id, "big") for s in got] == list(range(1, 513))
    assert [typed(s.attributes[1].value) for s in got][-1] == ("string_value", "512-0")
    [resource_spans] = read(encoder.request([])).resource_spans
    assert list(resource_spans.scope_spans[0].spans) == []


@pytest.mark.parametrize("kind", ["internal", "server", "client", "producer", "consumer"])
def test_a_name_is_made_again_for_another_kind(kind: str) -> None:
    encoder = Encoder([], "notify")
    encoder.request([Ended("same", "internal")])
    [span] = read(encoder.request([Ended("same", kind)])).resource_spans[0].scope_spans[0].spans
    assert span.kind == ["internal", "server", "client", "producer", "consumer"].index(kind) + 1


@dataclass
class Published:
    """A publish with its append, as notify.tracing hands it to the encoder (PublishData)."""

    span_id: str = "00f067aa0ba902b7"
    parent_id: str = "0102030405060708"
    flags: int = SAMPLED | HAS_IS_REMOTE | IS_REMOTE
    start_ns: int = T0
    end_ns: int = T0 + 9_000
    attributes: Attributes = field(default_factory=lambda: NO_ATTRIBUTES)
    error: str | None = None
    append_id: str = "a1a2a3a4a5a6a7a8"
    append_start: int = T0 + 2_000
    append_end: int = T0 + 7_000
    first: tuple[str, str] | None = ("1717171717171-0", "orders.eu")
    count: int = 1
    name: str = "notify.publish"
    kind: str = "producer"
    trace_id: str = TRACE


PUBLISHES = {
    "with a parent": Published(),
    "a new trace": Published(parent_id="", flags=SAMPLED | HAS_IS_REMOTE),
    "a batch": Published(first=("1-0", "c"), count=1000),
    "an id of 101 bytes": Published(first=("9" * 101, "orders.eu")),
    "an id of 102 bytes": Published(first=("9" * 102, "orders.eu")),
    "long id and channel": Published(first=("é" * 200, "通知." * 3000), count=2**40),
    "a channel with %": Published(first=("1-0%c", "100%")),
    "labelled too": Published(attributes={"extra": 7, "messaging.system": "other"}),
    "failed after the append": Published(error="RuntimeError: after"),
    "failed in the append": Published(first=None, append_end=T0 + 9_000, error="E: in"),
    "refused in the append": Published(first=None, append_end=T0 + 9_000),
}


@pytest.mark.parametrize("sent", PUBLISHES.values(), ids=PUBLISHES.keys())
def test_a_publish_and_its_append_read_back_as_two_spans(sent: Published) -> None:
    encoder = Encoder([("service.name", "s")], "notify")
    before = Ended("notify.deliver", span_id="1111111111111111")
    after = Ended("notify.dispatch", span_id="2222222222222222", attributes={"n": 1})
    for _ in range(2):  # made, then found made: the same spans
        spans = read(encoder.request([before, sent, after])).resource_spans[0].scope_spans[0]
        assert [s.name for s in spans.spans] == [
            "notify.deliver",
            "notify.publish",
            "notify.append",
            "notify.dispatch",
        ]
        publish, append = spans.spans[1], spans.spans[2]
        assert publish.trace_id.hex() == TRACE == append.trace_id.hex()
        assert publish.span_id.hex() == sent.span_id
        assert publish.parent_span_id.hex() == sent.parent_id
        assert (publish.kind, publish.flags) == (4, sent.flags)  # producer
        assert (publish.start_time_unix_nano, publish.end_time_unix_nano) == (T0, T0 + 9_000)
        labels = {k: typed(AnyValue(**value_of(v))) for k, v in sent.attributes.items()}
        if sent.first is not None:  # what was stored labels it last
            labels |= {
                "messaging.system": ("string_value", "notify"),
                "messaging.message.id": ("string_value", sent.first[0]),
                "messaging.destination.name": ("string_value", sent.first[1]),
                "messaging.batch.message_count": ("int_value", sent.count),
            }
        assert {a.key: typed(a.value) for a in publish.attributes} == labels
        assert len(publish.attributes) == len(labels)
        assert (publish.status.code, publish.status.message) == (
            (0, "") if sent.error is None else (2, sent.error)
        )
        assert append.span_id.hex() == sent.append_id
        assert append.parent_span_id.hex() == sent.span_id
        assert (append.kind, append.flags) == (3, SAMPLED | HAS_IS_REMOTE)  # client, local
        assert (append.start_time_unix_nano, append.end_time_unix_nano) == (
            T0 + 2_000,
            sent.append_end,
        )
        assert {a.key: typed(a.value) for a in append.attributes} == {
            "db.system.name": ("string_value", "redis")
        }
        failed = sent.first is None and sent.error is not None  # it went through the append
        assert (append.status.code, append.status.message) == (
            (2, sent.error) if failed else (0, "")
        )
        assert not publish.events and not append.links and append.dropped_attributes_count == 0


def value_of(value: Value) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"bool_value": value}
    if isinstance(value, int):
        return {"int_value": value}
    if isinstance(value, float):
        return {"double_value": value}
    return {"string_value": value}


def test_a_publish_whose_append_never_began_is_one_span() -> None:
    encoder = Encoder([], "notify")
    sent = Published(append_start=0, first=None)
    [publish] = read(encoder.request([sent])).resource_spans[0].scope_spans[0].spans
    assert publish.name == "notify.publish" and publish.span_id.hex() == sent.span_id
    assert list(publish.attributes) == []
