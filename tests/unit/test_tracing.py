"""The traceparent an event stores, and notify.tracing in this process against a local
OTLP receiver: spans, sampling, the export queue, the exporter's settings and retries."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from notify import logs, tracing
from notify.errors import ConfigError, Forbidden, NotFound
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


Tracer = Callable[..., OtlpReceiver]


@pytest.fixture
def tracer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tracer]:
    """Start tracing in this process with the given OTEL_* variables, exporting to a
    local receiver (made unless given); stopped, and the receivers too, at the end."""
    receivers: list[OtlpReceiver] = []
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)

    def start(receiver: OtlpReceiver | None = None, **env: str) -> OtlpReceiver:
        receiver = receiver or OtlpReceiver()
        receivers.append(receiver.start())
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert not tracing.ENABLED
        assert tracing.setup("unit")
        return receiver

    try:
        yield start
    finally:
        tracing.shutdown()
        for receiver in receivers:
            receiver.stop()
    assert not tracing.ENABLED and logs.span_ids is None


@pytest.fixture
def traced(tracer: Tracer) -> OtlpReceiver:
    """Tracing on in this process, exporting to a local receiver, until the test ends."""
    return tracer()


def exporting() -> bool:
    return any(t.name == "notify-spans" and t.is_alive() for t in threading.enumerate())


def test_off_the_helpers_pass_the_traceparent_through() -> None:
    assert not tracing.ENABLED and not tracing.setup("unit") and not exporting()
    with tracing.publishing(GOOD) as stamped:
        assert stamped == GOOD
    with tracing.publish(GOOD) as span:
        assert span is None
    assert tracing.outgoing(GOOD) == GOOD and tracing.outgoing(None) is None


def test_spans_follow_the_stored_traceparent(traced: OtlpReceiver) -> None:
    formatter = logs.JsonFormatter("unit")
    log = logging.LogRecord("notify.unit", logging.INFO, "f.py", 1, "inside", (), None)
    assert not tracing.recording()  # no span is current
    with tracing.publishing(GOOD) as stamped:
        assert stamped is not None and stamped.startswith(f"00-{TRACE}-")
        assert tracing.recording()
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


def test_a_publish_records_its_append_and_what_was_stored(traced: OtlpReceiver) -> None:
    # as api/routes/publish.py's store() does
    with tracing.publishing(GOOD) as stamped:
        publish = tracing.appending()
        assert publish is not None and tracing.recording()
        publish.appended([("1-0", "orders.eu"), ("1-1", "orders.us")])
    with pytest.raises(ConnectionError), tracing.publishing(None) as new:
        assert tracing.appending() is not None
        raise ConnectionError("Redis went away")  # within the append
    with tracing.publishing(f"00-{TRACE}-{PARENT}-00"):  # sampled out: no append either
        assert tracing.appending() is None
    with tracing.span("notify.deliver", None, "client"):  # no publish
        assert tracing.appending() is None
    assert tracing.appending() is None
    tracing.shutdown()
    assert stamped is not None and new is not None
    spans = {(s.trace_id, s.name): s for s in traced.spans}
    assert len(spans) == len(traced.spans) == 5
    publish_span, append = spans[TRACE, "notify.publish"], spans[TRACE, "notify.append"]
    assert stamped == f"00-{TRACE}-{publish_span.span_id}-01"
    assert publish_span.parent_id == PARENT and publish_span.kind == "producer"
    assert publish_span.attributes == {
        "messaging.system": "notify",
        "messaging.message.id": "1-0",
        "messaging.destination.name": "orders.eu",
        "messaging.batch.message_count": 2,
    }
    assert append.parent_id == publish_span.span_id and append.kind == "client"
    assert append.attributes == {"db.system.name": "redis"} and append.status == 0
    assert publish_span.start_ns <= append.start_ns <= append.end_ns <= publish_span.end_ns
    assert publish_span.span_id != append.span_id
    trace = new[3:35]
    failed, its_append = spans[trace, "notify.publish"], spans[trace, "notify.append"]
    assert failed.parent_id == "" and failed.attributes == {}
    assert its_append.parent_id == failed.span_id and its_append.end_ns == failed.end_ns
    for span in (failed, its_append):
        assert (span.status, span.status_message) == (2, "ConnectionError: Redis went away")


def test_the_http_publish_span_is_handed_on_not_made_current(traced: OtlpReceiver) -> None:
    # as api/routes/publish.py's accept_one() and store() do
    with tracing.publish(GOOD) as span:
        assert span is not None and span.context.startswith(f"00-{TRACE}-")
        assert not tracing.recording() and tracing.appending() is None  # not current
        assert tracing.appending(span) is span
        span.appended([("1-0", "orders.eu")])
    with tracing.publish(f"00-{TRACE}-{PARENT}-00") as out:  # sampled out upstream
        assert out is not None and out.context.endswith("-00")
        assert tracing.appending(out) is None
    tracing.shutdown()
    spans = {s.name: s for s in traced.spans}
    assert len(spans) == len(traced.spans) == 2
    publish, append = spans["notify.publish"], spans["notify.append"]
    assert span.context == f"00-{TRACE}-{publish.span_id}-01" and publish.parent_id == PARENT
    assert publish.attributes["messaging.message.id"] == "1-0"
    assert append.parent_id == publish.span_id and append.trace_id == TRACE


def test_a_forked_child_makes_span_ids_of_its_own() -> None:
    # ids are made 256 at a time: those left when a Celery pool forks are not the
    # child's to use, or parent and child would make the same ones
    with tracing.span("notify.deliver", GOOD, "client"):
        pass
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        with tracing.span("notify.deliver", GOOD, "client") as child_span:
            os.write(write, child_span.span_id.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        from_child = pipe.read().decode()
    with tracing.span("notify.deliver", GOOD, "client") as parent_span:
        pass
    assert len(from_child) == 16 and from_child != parent_span.span_id


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
            assert append is not None and not append.sampled
        tracing.annotate({"id": "1-0"})
    assert stamped is not None and stamped.startswith(f"00-{TRACE}-") and stamped.endswith("-00")
    tracing.record("notify.dispatch", stamped, time.time_ns(), "consumer")
    tracing.shutdown()
    assert traced.of_trace(TRACE) == [] and traced.requests == 0


def test_only_a_sampled_trace_is_exported_and_the_thread_runs_while_tracing(
    tracer: Tracer,
) -> None:
    receiver = tracer(OTEL_TRACES_SAMPLER="always_off")
    assert exporting()
    with tracing.publishing(GOOD) as stamped:  # not parent-based: the parent is not asked
        assert not tracing.recording()
        with tracing.child("notify.append", "client") as append:
            assert append is not None and not append.sampled  # the publish span itself
        tracing.annotate({"id": "1-0"})
        assert tracing.outgoing(GOOD) == stamped
    assert stamped is not None and stamped[:36] == GOOD[:36] and stamped.endswith("-00")
    with tracing.span("notify.deliver", None, "client") as root:
        assert not root.sampled
    tracing.record("notify.dispatch", GOOD, time.time_ns(), "consumer")
    tracing.shutdown()
    assert not exporting()
    assert receiver.requests == 0 and receiver.headers == []


@pytest.mark.parametrize(
    ("name", "arg", "low", "parent", "sampled"),
    [
        ("always_on", None, 0, False, True),
        ("always_off", None, 0, True, False),
        ("parentbased_always_on", None, 0, None, True),
        ("parentbased_always_on", None, 0, False, False),
        ("parentbased_always_off", None, 0, None, False),
        ("parentbased_always_off", None, 0, True, True),
        ("traceidratio", "0.25", 2**62 - 1, False, True),  # below a quarter of 2**64
        ("traceidratio", "0.25", 2**62, True, False),
        ("traceidratio", "0", 0, True, False),
        ("traceidratio", None, 2**64 - 1, None, True),  # no ratio: 1
        ("parentbased_traceidratio", "0.5", 2**63, None, False),
        ("parentbased_traceidratio", "0.5", 2**63 - 1, None, True),
        ("parentbased_traceidratio", "0.5", 2**63, True, True),
        ("parentbased_traceidratio", "1", 2**63, False, False),
    ],
)
def test_every_sampler_decides_as_the_specification_says(
    name: str, arg: str | None, low: int, parent: bool | None, sampled: bool
) -> None:
    trace_id = f"{0xFFFF << 64 | low:032x}"  # the upper half does not count
    assert tracing.sampler(name, arg)(trace_id, parent) is sampled


def test_the_sampler_comes_from_the_environment(tracer: Tracer) -> None:
    receiver = tracer(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0")
    with tracing.publishing(None) as new:  # a new trace: the ratio decides
        pass
    with tracing.publishing(GOOD) as followed:  # the parent decides
        pass
    tracing.shutdown()
    assert new is not None and new.endswith("-00") and followed is not None
    assert [s.name for s in receiver.spans] == ["notify.publish"]
    assert receiver.spans[0].span_id == followed[36:52]


def test_a_full_queue_drops_spans_and_says_how_many(
    tracer: Tracer, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = tracer(OTEL_BSP_MAX_QUEUE_SIZE="2", OTEL_BSP_SCHEDULE_DELAY="60000")
    for n in range(50):
        with tracing.span("notify.deliver", GOOD, "client", {"n": n}):
            pass
    tracing.shutdown()
    [line] = [r.getMessage() for r in caplog.records if "spans dropped" in r.getMessage()]
    found = re.match(r"(\d+) spans dropped: more than OTEL_BSP_MAX_QUEUE_SIZE=2 waited", line)
    assert found is not None, line
    dropped = int(found.group(1))
    assert dropped > 0 and len(receiver.spans) + dropped == 50
    assert {s.name for s in receiver.spans} == {"notify.deliver"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("a=1", {"a": "1"}),
        (" a = 1 , ,b=x%20y%2Cz ", {"a": "1", "b": "x y,z"}),
        ("k%3Dey=v=w", {"k=ey": "v=w"}),  # the first = splits
        ("empty=", {"empty": ""}),
    ],
)
def test_key_value_lists_are_read_as_the_specification_writes_them(
    text: str, expected: dict[str, str]
) -> None:
    assert tracing.pairs("OTEL_EXPORTER_OTLP_HEADERS", text) == expected


@pytest.mark.parametrize("text", ["novalue", "a=1,=2"])
def test_a_malformed_key_value_list_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r"OTEL_EXPORTER_OTLP_HEADERS: .* is not key=value"):
        tracing.pairs("OTEL_EXPORTER_OTLP_HEADERS", text)


def test_the_exporter_sends_the_headers_compressed_to_the_traces_endpoint(
    tracer: Tracer,
) -> None:
    receiver = OtlpReceiver(path="/otlp/spans")
    tracer(
        receiver,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint + "/otlp/spans",  # as given
        OTEL_EXPORTER_OTLP_TRACES_HEADERS="api-key=s%3Dcret, x-tenant = acme",
        OTEL_EXPORTER_OTLP_HEADERS="ignored=1",  # the traces variable wins
        OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
    )
    with tracing.span("notify.deliver", GOOD, "client"):
        pass
    tracing.shutdown()
    [headers] = receiver.headers
    assert headers["api-key"] == "s=cret" and headers["x-tenant"] == "acme"
    assert "ignored" not in headers
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["content-encoding"] == "gzip"
    assert [s.name for s in receiver.spans] == ["notify.deliver"]


def test_a_collector_that_is_unavailable_a_moment_is_tried_again(tracer: Tracer) -> None:
    receiver = OtlpReceiver()
    receiver.answer(503)
    tracer(receiver)
    with tracing.span("notify.deliver", GOOD, "client"):
        pass
    started = time.monotonic()
    tracing.shutdown()
    assert 0.5 < time.monotonic() - started < 5  # backed off about a second, once
    assert len(receiver.headers) == 2 and receiver.requests == 1
    assert [s.name for s in receiver.spans] == ["notify.deliver"]


def test_a_refused_batch_is_dropped_at_once_with_a_log_line(
    tracer: Tracer, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = OtlpReceiver()
    receiver.answer(400)
    tracer(receiver)
    with tracing.span("notify.deliver", GOOD, "client"):
        pass
    tracing.shutdown()
    assert len(receiver.headers) == 1 and receiver.spans == []
    [line] = [r.getMessage() for r in caplog.records if r.name == "notify.tracing"]
    assert line == f"1 spans dropped: the export to {receiver.endpoint}/v1/traces failed (HTTP 400)"


def test_no_collector_costs_at_most_the_timeout(
    tracer: Tracer, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tracer(
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{port}/v1/traces",
        OTEL_EXPORTER_OTLP_TIMEOUT="1500",
    )
    with tracing.span("notify.deliver", GOOD, "client"):
        pass
    started = time.monotonic()
    tracing.shutdown()
    assert time.monotonic() - started < 3
    [line] = [r.getMessage() for r in caplog.records if r.name == "notify.tracing"]
    assert line.startswith("1 spans dropped: the export to") and "ConnectionRefusedError" in line


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://c:4318", "not an http:// or https:// URL"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://", "not an http:// or https:// URL"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:99999", "out of range"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json", "http/protobuf only"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "gzip or none"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "not a number"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0", "below 1"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "token", "not key=value"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=b%0D%0AHost: x", "its value one line"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "a b=c", "a header is a token"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team", "not key=value"),
        ("OTEL_TRACES_SAMPLER", "jaeger_remote", "not one of"),
        ("OTEL_TRACES_SAMPLER_ARG", "2", "not a ratio"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0", "below 1"),
        ("OTEL_BSP_SCHEDULE_DELAY", "nan", "below 0"),
    ],
)
def test_a_malformed_variable_is_refused_by_name(variable: str, value: str, message: str) -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", variable: value}
    if variable == "OTEL_TRACES_SAMPLER_ARG":
        environ["OTEL_TRACES_SAMPLER"] = "traceidratio"
    with pytest.raises(ConfigError, match=f"^{variable}: .*{message}"):
        tracing.require(environ)


def test_the_service_is_named_by_the_environment(tracer: Tracer) -> None:
    receiver = tracer(OTEL_RESOURCE_ATTRIBUTES="service.name=billing,team=core%2Fevents")
    with tracing.span("notify.deliver", None, "client"):
        pass
    tracing.shutdown()
    [body] = receiver.bodies
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    [resource_spans] = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource == {
        "service.name": "billing",
        "telemetry.sdk.name": "notify",
        "telemetry.sdk.language": "python",
        "team": "core/events",
    }
    assert [s.scope.name for s in resource_spans.scope_spans] == ["notify"]


def test_otel_service_name_wins(tracer: Tracer) -> None:
    receiver = tracer(
        OTEL_SERVICE_NAME="notify-eu", OTEL_RESOURCE_ATTRIBUTES="service.name=billing"
    )
    with pytest.raises(NotFound), tracing.span("notify.deliver", None, "client"):
        raise NotFound("a client's mistake")
    tracing.shutdown()
    [deliver] = receiver.spans
    assert deliver.service == "notify-eu" and deliver.status == 0


def test_a_full_batch_goes_at_once_the_rest_on_schedule(tracer: Tracer) -> None:
    receiver = tracer(OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2", OTEL_BSP_SCHEDULE_DELAY="60000")
    for n in range(2):  # spans that end
        with tracing.span("notify.deliver", GOOD, "client", {"n": n}):
            pass
    receiver.wait("a full batch", lambda got: len(got) == 2, timeout=10)
    for n in range(2, 4):  # and spans recorded afterwards
        tracing.record("notify.dispatch", GOOD, time.time_ns(), "consumer", {"n": n})
    with tracing.span("notify.deliver", GOOD, "client", {"n": 4}):
        pass
    receiver.wait("two full batches", lambda got: len(got) == 4, timeout=10)
    time.sleep(0.3)
    assert receiver.requests == 2  # the fifth waits for its batch or the schedule
    tracing.shutdown()
    assert receiver.requests == 3
    assert sorted(s.attributes["n"] for s in receiver.spans) == [0, 1, 2, 3, 4]


class Scripted:
    """A collector on a bare socket that answers each request with the next of
    ``answers`` (raw bytes; ``None`` closes the connection instead, unanswered), and
    closes a connection after an answer that ends with ``CLOSE``: how collectors and
    proxies answer, beyond what http.server writes. It keeps each request's body, and
    counts connections."""

    CLOSE = b"<close>"

    def __init__(self, *answers: bytes | None) -> None:
        self.answers = list(answers)
        self.bodies: list[bytes] = []
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self.serve, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def start(self) -> Scripted:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.close()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                self.answer(conn)

    def answer(self, conn: socket.socket) -> None:
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                more = conn.recv(65536)
                if not more:
                    return
                data += more
            head, _, data = data.partition(b"\r\n\r\n")
            found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            assert found is not None, head
            while len(data) < int(found.group(1)):
                data += conn.recv(65536)
            self.bodies.append(data[: int(found.group(1))])
            data = data[int(found.group(1)) :]
            answer = self.answers.pop(0) if self.answers else None
            if answer is None:
                return
            conn.sendall(answer.removesuffix(self.CLOSE))
            if answer.endswith(self.CLOSE):
                return


def one_span_each(n: int) -> None:
    """``n`` spans, each exported in a request of its own (OTEL_BSP_MAX_EXPORT_BATCH_SIZE
    is 1), each once the one before is answered."""
    for i in range(n):
        with tracing.span("notify.deliver", GOOD, "client", {"n": i}):
            pass
        deadline = time.monotonic() + 10
        while tracing._queue.spans and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # and its answer read


def spans_of(bodies: list[bytes]) -> list[int]:
    found = []
    for body in bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                found += [s.attributes[0].value.int_value for s in scope_spans.spans]
    return found


def test_the_exporter_reads_every_form_of_answer_and_keeps_its_connection(
    tracer: Tracer, caplog: pytest.LogCaptureFixture
) -> None:
    collector = Scripted(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: t\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nto the end" + Scripted.CLOSE,  # a new connection next
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",  # and next
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" + Scripted.CLOSE,  # unannounced
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    )
    tracer(collector, OTEL_BSP_MAX_EXPORT_BATCH_SIZE="1", OTEL_BSP_SCHEDULE_DELAY="60000")
    one_span_each(7)
    tracing.shutdown()
    assert spans_of(collector.bodies) == list(range(7))
    # the 7th request found the 6th's connection closed, unannounced, and opened another
    assert collector.connections == 4
    assert not [r for r in caplog.records if r.name == "notify.tracing"]


def test_an_answer_that_is_not_http_drops_the_batch_with_a_log_line(
    tracer: Tracer, caplog: pytest.LogCaptureFixture
) -> None:
    collector = Scripted(*[b"SSH-2.0-OpenSSH_9.6\r\n\r\n"] * 5)
    tracer(collector, OTEL_EXPORTER_OTLP_TIMEOUT="1500")
    with tracing.span("notify.deliver", GOOD, "client", {"n": 0}):
        pass
    tracing.shutdown()
    [line] = [r.getMessage() for r in caplog.records if r.name == "notify.tracing"]
    assert line.startswith("1 spans dropped: the export to") and "not an HTTP/1.x answer" in line


def test_a_collector_that_hangs_up_unanswered_is_tried_again(tracer: Tracer) -> None:
    collector = Scripted(None, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    tracer(collector)
    with tracing.span("notify.deliver", GOOD, "client", {"n": 0}):
        pass
    tracing.shutdown()
    assert spans_of(collector.bodies) == [0, 0] and collector.connections == 2
