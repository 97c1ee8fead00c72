"""The traceparent an event stores, and notify.tracing in this process against a local
OTLP receiver."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify import logs, tracing
from notify.errors import ConfigError, Forbidden
from notify.events import encode_draft, stored_traceparent, valid_traceparent, with_id
from tests.support.otlp_receiver import OtlpReceiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
GOOD = f"00-{TRACE}-{PARENT}-01"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (GOOD, GOOD),
        (f"00-{TRACE}-{PARENT}-00", f"00-{TRACE}-{PARENT}-00"),  # not sampled: still a trace
        (f"01-{TRACE}-{PARENT}-01", GOOD),  # a later version, read as 00
        (f"cc-{TRACE}-{PARENT}-09-more-fields", f"00-{TRACE}-{PARENT}-09"),
        (f"cc-{TRACE}-{PARENT}-09more", None),  # after 55 characters: "-" or the end
        (f"00-{TRACE}-{PARENT}-01-", None),  # version 00 is exactly 55 characters
        (f"ff-{TRACE}-{PARENT}-01", None),
        (f"00-{'0' * 32}-{PARENT}-01", None),
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (GOOD.upper(), None),
        (f"00-{TRACE[:-1]}-{PARENT}-01", None),
        (f"00_{TRACE}_{PARENT}_01", None),
        ("", None),
        (None, None),
        (7, None),
    ],
)
def test_valid_traceparent(value: object, expected: str | None) -> None:
    assert valid_traceparent(value) == expected


traceparents = st.builds(
    lambda t, p, f: f"00-{t:032x}-{p:016x}-{f:02x}",
    st.integers(1, 2**128 - 1),
    st.integers(1, 2**64 - 1),
    st.integers(0, 255),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
# text that tries to look like the field: quotes, braces and a traceparent's characters
lures = st.text(alphabet='",:{}\\traceparent0123456789abcdef-', max_size=90) | traceparents.map(
    lambda t: f'","traceparent":"{t}'
)


@given(
    data=json_values | lures,
    origin=st.none() | lures,
    ce=st.none() | st.dictionaries(st.sampled_from(["traceparent", "id", "x"]), lures),
    stored=st.none() | traceparents,
)
def test_the_stored_traceparent_is_read_back_from_the_envelope_alone(
    data: Any, origin: str | None, ce: dict[str, Any] | None, stored: str | None
) -> None:
    draft = encode_draft("c", "t", data, origin, max_bytes=1 << 20, ce=ce, traceparent=stored)
    for body in (draft.body, with_id("1-0", draft.body)):
        assert stored_traceparent(body) == stored
        assert orjson.loads(body).get("traceparent") == stored


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/t"},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, None),
    ],
)
def test_what_turns_tracing_on(environ: dict[str, str], on: str | None) -> None:
    assert tracing.wanted(environ) == on


def test_only_http_protobuf_is_spoken() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL: grpc"):
        tracing.require(environ)
    tracing.require({**environ, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    tracing.require({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})  # tracing off: not read


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """Tracing on in this process, exporting to a local receiver, until the test ends."""
    receiver = OtlpReceiver().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert not tracing.ENABLED
    assert tracing.setup("unit")
    try:
        yield receiver
    finally:
        tracing.shutdown()
        receiver.stop()
    assert not tracing.ENABLED and logs.span_ids is None


def test_off_the_helpers_pass_the_traceparent_through() -> None:
    assert not tracing.ENABLED
    with tracing.publishing(GOOD) as stamped:
        assert stamped == GOOD
    assert tracing.outgoing(GOOD) == GOOD and tracing.outgoing(None) is None


def test_spans_follow_the_stored_traceparent(traced: OtlpReceiver) -> None:
    formatter = logs.JsonFormatter("unit")
    log = logging.LogRecord("notify.unit", logging.INFO, "f.py", 1, "inside", (), None)
    with tracing.publishing(GOOD) as stamped:
        assert stamped is not None and stamped.startswith(f"00-{TRACE}-")
        line = orjson.loads(formatter.format(log))
        assert (line["trace_id"], line["span_id"]) == (TRACE, stamped[36:52])
        with tracing.child("notify.append", "client", {"n": 1}):
            tracing.annotate({"id": "1-0"})
    started = time.time_ns()
    tracing.record("notify.dispatch", stamped, started, "consumer", {"messaging.message.id": "1-0"})
    with tracing.span("notify.deliver", stamped, "client") as deliver:
        sent = tracing.outgoing(stamped)
        tracing.annotate({"notify.outcome": "retry"}, error="HTTP 503")
    assert "trace_id" not in orjson.loads(formatter.format(log))  # no span is current
    assert sent == tracing.traceparent_of(deliver) != stamped
    tracing.shutdown()  # exports what is queued

    spans = {s.name: s for s in traced.of_trace(TRACE)}
    assert set(spans) == {"notify.publish", "notify.append", "notify.dispatch", "notify.deliver"}
    publish = spans["notify.publish"]
    assert publish.parent_id == PARENT and publish.kind == "producer"
    assert publish.span_id == stamped[36:52] and publish.service == "notify-unit"
    assert spans["notify.append"].parent_id == publish.span_id
    assert spans["notify.append"].attributes == {"n": 1, "id": "1-0"}
    dispatch = spans["notify.dispatch"]
    assert dispatch.parent_id == publish.span_id and dispatch.start_ns == started
    assert dispatch.end_ns >= started and dispatch.kind == "consumer"
    deliver_span = spans["notify.deliver"]
    assert (
        deliver_span.parent_id == publish.span_id
        and sent == f"00-{TRACE}-{deliver_span.span_id}-01"
    )
    assert (deliver_span.status, deliver_span.status_message) == (2, "HTTP 503")


def test_a_new_trace_without_a_traceparent_and_errors_by_whose_fault(
    traced: OtlpReceiver,
) -> None:
    with tracing.publishing(None) as stamped:
        assert stamped is not None
    trace_id = stamped[3:35]
    with pytest.raises(Forbidden), tracing.span("notify.publish", stamped, "producer"):
        raise Forbidden("a client's mistake")
    with pytest.raises(RuntimeError), tracing.span("notify.publish", stamped, "producer"):
        raise RuntimeError("ours")
    tracing.shutdown()
    root, refused, failed = sorted(traced.of_trace(trace_id), key=lambda s: s.start_ns)
    assert root.parent_id == "" and root.status == 0
    assert refused.status == 0  # refusing a request is the span doing its job
    assert failed.status == 2 and failed.status_message == "RuntimeError: ours"


def test_a_trace_sampled_out_upstream_stays_out(traced: OtlpReceiver) -> None:
    with tracing.publishing(f"00-{TRACE}-{PARENT}-00") as stamped:
        with tracing.child("notify.append", "client") as append:
            assert not append.is_recording()
        tracing.annotate({"id": "1-0"})
    assert stamped is not None and stamped.startswith(f"00-{TRACE}-") and stamped.endswith("-00")
    tracing.record("notify.dispatch", stamped, time.time_ns(), "consumer")
    tracing.shutdown()
    assert traced.of_trace(TRACE) == [] and traced.requests == 0
