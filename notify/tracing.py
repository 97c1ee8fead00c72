"""OpenTelemetry tracing of an event's way through notify, off unless asked for.

Tracing is on in a process when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set and ``OTEL_SDK_DISABLED`` is not
``true``: each role calls :func:`setup` once at its start (a Celery pool process when it
builds its runtime, after the fork). Off, notify imports nothing of OpenTelemetry's SDK
or exporter (the ``otel`` extra installs them) and the hot paths check :data:`ENABLED`
once, nothing more. On, spans go over OTLP/HTTP (protobuf) through the SDK's batch processor, every
standard ``OTEL_*`` variable applying (headers, timeout, sampler, batch sizes), with the
service named ``notify-<role>`` unless ``OTEL_SERVICE_NAME`` says otherwise.

The trace follows the event, not the processes: the event envelope stores a W3C
``traceparent`` (notify.events), which is the gateway's ``notify.publish`` span when
tracing is on there, else the one the producer gave. Dispatch, every delivery attempt
and the fan-out to streams are children of it, and a webhook carries its delivery
span's context on. The provider is notify's own, not the global one, so that tracing
notify turns on no library's instrumentation (FastAPI's, for one) as a side effect.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from notify import logs
from notify.errors import ConfigError, NotifyError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

ENABLED = False
"""Whether this process traces: read at every traced step, so keep it a module global."""

Attributes = Mapping[str, str | int]
ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
MISSING = (
    "tracing needs the OpenTelemetry packages, which are not installed:"
    " pip install 'notify[otel]' (or unset it to run without tracing)"
)

_provider: TracerProvider | None = None


def wanted(environ: Mapping[str, str] = os.environ) -> str | None:
    """The variable that turns tracing on, when one does."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    return next((name for name in ENDPOINTS if environ.get(name, "").strip()), None)


def require(environ: Mapping[str, str] = os.environ) -> None:
    """Refuse to start (ConfigError) when tracing is asked for and cannot be done:
    each role checks this before it starts, rather than failing at its first span."""
    variable = wanted(environ)
    if variable is None:
        return
    for name in PROTOCOLS:
        protocol = environ.get(name, "").strip()
        if protocol and protocol != "http/protobuf":
            raise ConfigError(name, f"{protocol}: notify exports traces over http/protobuf only")
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as exc:
        raise ConfigError(variable, MISSING) from exc


def setup(role: str) -> bool:
    """Start tracing this process as ``role`` (gateway, dispatcher, worker) when the
    environment asks for it; whether it does. Spans still queued are exported at exit."""
    global ENABLED, _provider, _otel
    require()
    if wanted() is None or ENABLED:
        return ENABLED
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = OTELResourceDetector().detect().attributes.get(SERVICE_NAME)
    resource = Resource.create({SERVICE_NAME: str(named or f"notify-{role}")})
    _provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _otel = _Otel(_provider.get_tracer("notify"))
    logs.span_ids = current_ids
    atexit.register(shutdown)
    ENABLED = True
    return True


def shutdown() -> None:
    """Export what is queued and stop (at exit; a Celery pool process calls it too,
    as it may leave by ``os._exit``)."""
    global ENABLED
    if _provider is not None and ENABLED:
        ENABLED = False
        logs.span_ids = None
        _provider.shutdown()


class _Otel:
    """OpenTelemetry's API as the helpers below use it, looked up once by :func:`setup`
    (a publish passes through here a few times: each lookup would count)."""

    def __init__(self, tracer: Tracer) -> None:
        from opentelemetry import context, trace

        self.tracer = tracer
        self.attach, self.detach, self.empty = context.attach, context.detach, context.Context
        self.current, self.activate = trace.get_current_span, trace.set_span_in_context
        self.SpanContext, self.NonRecordingSpan = trace.SpanContext, trace.NonRecordingSpan
        self.TraceFlags, self.Status, self.ERROR = (
            trace.TraceFlags,
            trace.Status,
            trace.StatusCode.ERROR,
        )
        self.kinds = {kind.name.lower(): kind for kind in trace.SpanKind}

    def context(self, traceparent: str | None) -> Context:
        """A context whose span is the remote parent ``traceparent`` names (an empty one
        for None: a new trace, never whatever span happens to be current)."""
        if traceparent is None:
            return self.empty()
        parent = self.SpanContext(
            trace_id=int(traceparent[3:35], 16),
            span_id=int(traceparent[36:52], 16),
            is_remote=True,
            trace_flags=self.TraceFlags(int(traceparent[53:55], 16)),
        )
        return self.activate(self.NonRecordingSpan(parent))

    def start(
        self, name: str, parent: Context | None, kind: str, attributes: Attributes | None
    ) -> Span:
        return self.tracer.start_span(
            name,
            context=parent,
            kind=self.kinds[kind],
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )


_otel: _Otel | None = None


def _api() -> _Otel:
    assert _otel is not None, "tracing.setup() first"
    return _otel


class _Active:
    """A started span, current within the block and ended after it. An exception ends
    it as an error, unless it is a client's mistake (a NotifyError below 500: the span
    did its job in refusing it)."""

    __slots__ = ("span", "token")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.token: object = None

    def __enter__(self) -> Any:
        self.token = _api().attach(_api().activate(self.span))
        return self.span

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        otel = _api()
        otel.detach(self.token)  # type: ignore[arg-type]
        if isinstance(exc, Exception) and not (isinstance(exc, NotifyError) and exc.status < 500):
            self.span.record_exception(exc)
            self.span.set_status(otel.Status(otel.ERROR, f"{type(exc).__name__}: {exc}"))
        self.span.end()


class _Publishing(_Active):
    __slots__ = ()

    def __enter__(self) -> str:
        super().__enter__()
        return traceparent_of(self.span)


def traceparent_of(span: Span) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def span(
    name: str, parent: str | None, kind: str = "internal", attributes: Attributes | None = None
) -> AbstractContextManager[Span]:
    """A span, current within the block, child of the ``parent`` traceparent (a new
    trace for None); ``kind`` is one of OpenTelemetry's span kinds, in lower case."""
    otel = _api()
    return _Active(otel.start(name, otel.context(parent), kind, attributes))


def child(
    name: str, kind: str, attributes: Attributes | None = None
) -> AbstractContextManager[Span]:
    """A span, current within the block, child of the current span; none when that one
    is not recorded (sampled out: its children would not be either)."""
    otel = _api()
    current = otel.current()
    if not current.is_recording():
        return nullcontext(current)
    return _Active(otel.start(name, None, kind, attributes))


def publishing(traceparent: str | None) -> AbstractContextManager[str | None]:
    """The gateway's ``notify.publish`` span for one publish request, whose context
    (``as``) is the traceparent to store with its events; with tracing off, the
    producer's ``traceparent`` as given (propagation costs nothing)."""
    if not ENABLED:
        return nullcontext(traceparent)
    otel = _api()
    return _Publishing(otel.start("notify.publish", otel.context(traceparent), "producer", None))


def annotate(attributes: Attributes, error: str | None = None) -> None:
    """Label the current span (tracing on only), as failed with ``error`` if given."""
    otel = _api()
    current = otel.current()
    if current.is_recording():
        current.set_attributes(attributes)
        if error is not None:
            current.set_status(otel.Status(otel.ERROR, error))


def record(
    name: str, parent: str, started_ns: int, kind: str, attributes: Attributes | None = None
) -> None:
    """A span that ran from ``started_ns`` (``time.time_ns()``) until now, recorded
    afterwards: for work done for many events at once, one span per event."""
    otel = _api()
    done = otel.tracer.start_span(
        name,
        context=otel.context(parent),
        kind=otel.kinds[kind],
        attributes=attributes,
        start_time=started_ns,
    )
    done.end()


def outgoing(stored: str | None) -> str | None:
    """The ``traceparent`` to send onward: the current span's while tracing (the
    delivery attempt's), else the stored one unchanged."""
    if not ENABLED:
        return stored
    current = _api().current()
    return traceparent_of(current) if current.get_span_context().is_valid else stored


def current_ids() -> tuple[str, str] | None:
    """The trace and span id of the current span, for log lines (notify.logs)."""
    ctx = _api().current().get_span_context()
    return (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}") if ctx.is_valid else None


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a (valid) traceparent, for log lines."""
    return traceparent[3:35] if traceparent else None
