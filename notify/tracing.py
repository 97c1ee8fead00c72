"""OpenTelemetry tracing of an event's way through notify, off unless asked for.

Tracing is on in a process when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set and ``OTEL_SDK_DISABLED`` is not
``true``: each role calls :func:`setup` once at its start (a Celery pool process when it
builds its runtime, after the fork). Off, the hot paths check :data:`ENABLED` once,
nothing more, and no thread runs.

On, this module is notify's own small tracer, not OpenTelemetry's SDK, which costs a
publish several times the 10 % the issue allows: a span is a slotted object in a
``ContextVar``, ended spans wait in a bounded queue (``OTEL_BSP_MAX_QUEUE_SIZE``,
dropped and counted when full) and a daemon thread posts them every
``OTEL_BSP_SCHEDULE_DELAY`` ms, or as soon as ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` wait,
as OTLP/HTTP protobuf that notify.otlp encodes by hand. The standard variables apply:
the sampler (``OTEL_TRACES_SAMPLER``, ``_ARG``), the exporter's headers, timeout,
compression and certificates, ``OTEL_SERVICE_NAME`` (default ``notify-<role>``) and
``OTEL_RESOURCE_ATTRIBUTES``. A sampled-out span records nothing, nor do its children,
but its traceparent (flags ``00``) still goes on.

The trace follows the event, not the processes: the event envelope stores a W3C
``traceparent`` (notify.events), which is the gateway's ``notify.publish`` span when
tracing is on there, else the one the producer gave. Dispatch, every delivery attempt
and the fan-out to streams are children of it, and a webhook carries its delivery
span's context on.
"""

from __future__ import annotations

import atexit
import binascii
import gzip
import http.client
import logging
import os
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from notify import logs
from notify.errors import ConfigError, NotifyError
from notify.otlp import HAS_IS_REMOTE, IS_REMOTE, NO_ATTRIBUTES, SAMPLED, Attributes, Encoder, Value

log = logging.getLogger("notify.tracing")

ENABLED = False
"""Whether this process traces: read at every traced step, so keep it a module global."""

ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
RETRYABLE = frozenset({429, 502, 503, 504})
ATTEMPTS = 5
BACKOFF_S = 1.0
"""An export is tried ATTEMPTS times at most, waiting BACKOFF_S, then twice as long
each time (or what Retry-After asks), within the exporter's timeout."""
DROPS_LOGGED_EVERY_S = 60.0
REMOTE_PARENT = HAS_IS_REMOTE | IS_REMOTE
LOCAL_PARENT = HAS_IS_REMOTE | SAMPLED  # a child of a local span: sampled as it is
S = TypeVar("S", bound="Span")


@dataclass(frozen=True, slots=True)
class Sampler:
    """Which spans are recorded. A new trace is when the lower 64 bits of its id fall
    below ``bound`` (``1 << 64``: always, 0: never, else a ratio of them: every process
    decides alike for one trace); with ``follow`` (the ``parentbased_`` samplers), a
    span with a parent is recorded as its parent is."""

    follow: bool
    bound: int
    always: bool  # a new trace is always recorded (bound 1 << 64)

    def __call__(self, trace_id: bytes, parent: bool | None) -> bool:
        """For a span of the trace ``trace_id`` (16 bytes) whose parent is sampled,
        sampled out or absent (None: a new trace)."""
        if self.follow and parent is not None:
            return parent
        return int.from_bytes(trace_id[8:], "big") < self.bound


@dataclass(frozen=True)
class Config:
    """The standard OTEL_* variables, read and checked once."""

    url: str
    headers: dict[str, str]
    timeout_s: float
    gzip: bool
    ca_file: str | None
    client_cert: tuple[str, str | None] | None
    sampler: Sampler
    max_queue: int
    max_batch: int
    delay_s: float
    resource: dict[str, str]  # OTEL_RESOURCE_ATTRIBUTES, service.name decided


def wanted(environ: Mapping[str, str] = os.environ) -> str | None:
    """The variable that turns tracing on, when one does."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    return next((name for name in ENDPOINTS if environ.get(name, "").strip()), None)


def require(environ: Mapping[str, str] = os.environ) -> None:
    """Refuse to start (ConfigError naming the variable) when tracing is asked for and a
    variable it reads is malformed: each role checks this before it starts, rather
    than failing at its first span."""
    if wanted(environ) is not None:
        read(environ, "notify")


def _first(environ: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """The first of the variables ``names`` that is set: its name and value."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None


def _otlp(environ: Mapping[str, str], setting: str) -> tuple[str, str] | None:
    """An exporter setting: OTEL_EXPORTER_OTLP_TRACES_<setting>, else the one for every
    signal, OTEL_EXPORTER_OTLP_<setting>."""
    return _first(environ, f"OTEL_EXPORTER_OTLP_TRACES_{setting}", f"OTEL_EXPORTER_OTLP_{setting}")


def pairs(variable: str, text: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` as the OTLP exporter's headers and the resource attributes are
    written, each key and value percent-decoded and stripped."""
    found: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = unquote(key).strip()
        if not sep or not key:
            raise ConfigError(variable, f"{item.strip()!r} is not key=value")
        found[key] = unquote(value).strip()
    return found


def _number(given: tuple[str, str] | None, default: float, least: float) -> float:
    if given is None:
        return default
    name, text = given
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(name, f"{text!r} is not a number") from None
    if not value >= least:  # NaN too
        raise ConfigError(name, f"{text} is below {least:g}")
    return value


def sampler(name: str, arg: str | None = None) -> Sampler:
    """The sampler OTEL_TRACES_SAMPLER names, with OTEL_TRACES_SAMPLER_ARG's ratio
    (0-1, default 1) for the ``traceidratio`` ones."""
    if name not in SAMPLERS:
        raise ConfigError("OTEL_TRACES_SAMPLER", f"{name!r} is not one of {', '.join(SAMPLERS)}")
    root = name.removeprefix("parentbased_")
    ratio = 1.0 if root == "always_on" else 0.0
    if root == "traceidratio":
        try:
            ratio = 1.0 if arg is None or not arg.strip() else float(arg)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise ConfigError("OTEL_TRACES_SAMPLER_ARG", f"{arg!r} is not a ratio from 0 to 1")
    bound = round(ratio * (1 << 64))
    return Sampler(follow=root != name, bound=bound, always=bound >= 1 << 64)


def read(environ: Mapping[str, str], role: str) -> Config:
    """The configuration tracing runs with (ConfigError naming a malformed variable)."""
    given = _otlp(environ, "ENDPOINT")
    assert given is not None, "tracing is wanted: an endpoint is set"
    variable, url = given
    if variable == "OTEL_EXPORTER_OTLP_ENDPOINT":  # the base URL for every signal
        url = url.rstrip("/") + "/v1/traces"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad one)
    except ValueError as exc:
        raise ConfigError(variable, f"{url}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, f"{url}: not an http:// or https:// URL")
    protocol = _otlp(environ, "PROTOCOL")
    if protocol is not None and protocol[1] != "http/protobuf":
        name, value = protocol
        raise ConfigError(name, f"{value}: notify exports traces over http/protobuf only")
    compression = _otlp(environ, "COMPRESSION")
    if compression is not None and compression[1] not in ("gzip", "none"):
        raise ConfigError(compression[0], f"{compression[1]}: gzip or none")
    headers = _otlp(environ, "HEADERS")
    ca_file = _otlp(environ, "CERTIFICATE")
    cert = _otlp(environ, "CLIENT_CERTIFICATE")
    key = _otlp(environ, "CLIENT_KEY")
    resource = pairs("OTEL_RESOURCE_ATTRIBUTES", environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    service = environ.get("OTEL_SERVICE_NAME", "").strip()
    resource["service.name"] = service or resource.get("service.name") or f"notify-{role}"
    max_queue = int(_number(_first(environ, "OTEL_BSP_MAX_QUEUE_SIZE"), 2048, 1))
    max_batch = int(_number(_first(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"), 512, 1))
    return Config(
        url=url,
        headers=pairs(*headers) if headers else {},
        timeout_s=_number(_otlp(environ, "TIMEOUT"), 10000, 1) / 1000,
        gzip=compression is not None and compression[1] == "gzip",
        ca_file=ca_file[1] if ca_file else None,
        client_cert=(cert[1], key[1] if key else None) if cert else None,
        sampler=sampler(
            environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on",
            environ.get("OTEL_TRACES_SAMPLER_ARG"),
        ),
        max_queue=max_queue,
        max_batch=min(max_queue, max_batch),
        delay_s=_number(_first(environ, "OTEL_BSP_SCHEDULE_DELAY"), 5000, 0) / 1000,
        resource=resource,
    )


_current: ContextVar[Span | None] = ContextVar("notify_span", default=None)
_sampler = sampler("parentbased_always_on")
_time_ns = time.time_ns
_bits = random.getrandbits  # reseeded in a forked child by the random module itself
_fromhex = binascii.a2b_hex  # a little faster than bytes.fromhex
_object = object.__new__


class Span:
    """One span: its context and, when sampled, what it records: ids as the bytes the
    export sends (a traceparent's hex is made when one is asked for), times as
    ``time.time_ns()``. Ended and sampled, it waits in the export queue as it is
    (notify.otlp encodes it). :func:`_start` and :func:`child` make one."""

    __slots__ = (
        "attributes",
        "end_ns",
        "error",
        "flags",
        "kind",
        "name",
        "parent_id",
        "span_id",
        "start_ns",
        "token",
        "trace_id",
    )
    name: str
    kind: str  # a key of notify.otlp.KINDS
    trace_id: bytes  # 16 bytes
    span_id: bytes  # 8 bytes
    parent_id: bytes  # 8 bytes, empty for a root span
    flags: int  # SAMPLED | HAS_IS_REMOTE | IS_REMOTE (notify.otlp)
    attributes: Attributes  # replaced, never changed: it may be the caller's
    error: str | None  # the status is an error with this message
    start_ns: int
    end_ns: int  # set as it ends
    token: Token[Span | None]  # set on entering a with block

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        """End the span and make the one before current again. An exception ends it as
        an error, unless it is a client's mistake (a NotifyError below 500: the span did
        its job in refusing it)."""
        _current.reset(self.token)
        if self.flags & SAMPLED:
            if exc is not None and _fault(exc):
                self.error = f"{type(exc).__name__}: {exc}"
            self.end_ns = _time_ns()
            queue = _queue  # _Queue.add, inline
            if len(queue.spans) < queue.limit:
                queue.spans.append(self)
                if len(queue.spans) == queue.batch:
                    queue.ready.set()
            else:
                queue.dropped += 1


def _fault(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and not (isinstance(exc, NotifyError) and exc.status < 500)


class _Current(Span):
    """A span current within a ``with`` block, which gets the span."""

    __slots__ = ()

    def __enter__(self) -> Span:
        self.token = _current.set(self)
        return self


class _Publishing(Span):
    """A span current within a ``with`` block, which gets its traceparent."""

    __slots__ = ()

    def __enter__(self) -> str:
        self.token = _current.set(self)
        flags = "-01" if self.flags & SAMPLED else "-00"
        return f"00-{self.trace_id.hex()}-{self.span_id.hex()}{flags}"


def _start(
    cls: type[S], name: str, kind: str, parent: str | None, attributes: Attributes | None
) -> S:
    """A span of ``cls`` started now, child of the ``parent`` traceparent (a valid
    one) or the first of a new trace, sampled as the sampler decides; made inline, as
    :func:`child` makes one too (a call is a good part of what a span costs)."""
    if parent is None:
        trace_id, parent_id = (_bits(128) or 1).to_bytes(16, "big"), b""
        sampled = _sampler.always or _sampler(trace_id, None)
        flags = HAS_IS_REMOTE | SAMPLED if sampled else HAS_IS_REMOTE
    else:
        trace_id, parent_id = _fromhex(parent[3:35]), _fromhex(parent[36:52])
        sampled = parent[54] in "13579bdf"  # the flags' lowest bit
        if not _sampler.follow:
            sampled = _sampler(trace_id, sampled)
        flags = REMOTE_PARENT | SAMPLED if sampled else REMOTE_PARENT
    made = _object(cls)
    made.name, made.kind, made.flags = name, kind, flags
    made.trace_id, made.span_id = trace_id, (_bits(64) or 1).to_bytes(8, "big")
    made.parent_id, made.attributes, made.error = parent_id, attributes or NO_ATTRIBUTES, None
    made.start_ns = _time_ns()
    return made


def traceparent_of(span: Span) -> str:
    flags = "-01" if span.flags & SAMPLED else "-00"
    return f"00-{span.trace_id.hex()}-{span.span_id.hex()}{flags}"


def span(
    name: str, parent: str | None, kind: str = "internal", attributes: Attributes | None = None
) -> AbstractContextManager[Span]:
    """A span, current within the block, child of the ``parent`` traceparent (a new
    trace for None); ``kind`` is one of OpenTelemetry's span kinds, in lower case."""
    return _start(_Current, name, kind, parent, attributes)


def child(
    name: str, kind: str, attributes: Attributes | None = None
) -> AbstractContextManager[Span | None]:
    """A span, current within the block, child of the current span; none when that one
    is not recorded (sampled out: its children are not either) or there is none."""
    parent = _current.get()
    if parent is None or not parent.flags & SAMPLED:
        return nullcontext(parent)
    made = _object(_Current)  # as _start makes one
    made.name, made.kind, made.flags = name, kind, LOCAL_PARENT
    made.trace_id, made.span_id = parent.trace_id, (_bits(64) or 1).to_bytes(8, "big")
    made.parent_id, made.attributes, made.error = parent.span_id, attributes or NO_ATTRIBUTES, None
    made.start_ns = _time_ns()
    return made


def publishing(traceparent: str | None) -> AbstractContextManager[str | None]:
    """The gateway's ``notify.publish`` span for one publish request, whose context
    (``as``) is the traceparent to store with its events; with tracing off, the
    producer's ``traceparent`` as given (propagation costs nothing)."""
    if not ENABLED:
        return nullcontext(traceparent)
    return _start(_Publishing, "notify.publish", "producer", traceparent, None)


def recording() -> bool:
    """Whether the current span is recorded: a caller need not label one that is not."""
    current = _current.get()
    return current is not None and bool(current.flags & SAMPLED)


def annotate(attributes: Attributes, error: str | None = None) -> None:
    """Label the current span (if recorded), as failed with ``error`` if given."""
    current = _current.get()
    if current is not None and current.flags & SAMPLED:
        had = current.attributes
        current.attributes = {**had, **attributes} if had else attributes
        if error is not None:
            current.error = error


def record(
    name: str, parent: str, started_ns: int, kind: str, attributes: Attributes | None = None
) -> None:
    """A span that ran from ``started_ns`` (``time.time_ns()``) until now, recorded
    afterwards: for work done for many events at once, one span per event."""
    if _sampler.follow and parent[54] not in "13579bdf":
        return  # sampled out upstream, as most are where few are sampled: no span at all
    done = _start(Span, name, kind, parent, attributes)
    if done.flags & SAMPLED:
        done.start_ns, done.end_ns = started_ns, _time_ns()
        _queue.add(done)


def outgoing(stored: str | None) -> str | None:
    """The ``traceparent`` to send onward: the current span's while tracing (the
    delivery attempt's), else the stored one unchanged."""
    if not ENABLED:
        return stored
    current = _current.get()
    return traceparent_of(current) if current is not None else stored


def current_ids() -> tuple[str, str] | None:
    """The trace and span id of the current span, for log lines (notify.logs)."""
    current = _current.get()
    return (current.trace_id.hex(), current.span_id.hex()) if current is not None else None


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a (valid) traceparent, for log lines."""
    return traceparent[3:35] if traceparent else None


class _Queue:
    """Ended sampled spans waiting for the exporter: appended by whichever thread ends
    them (a deque's append and popleft are atomic), at most ``limit``, the rest dropped
    and counted; ``ready`` wakes the exporter once a batch waits."""

    __slots__ = ("batch", "dropped", "limit", "ready", "spans")

    def __init__(self, limit: int, batch: int) -> None:
        self.spans: deque[Span] = deque()
        self.limit, self.batch = limit, batch
        self.ready = threading.Event()
        self.dropped = 0

    def add(self, span: Span) -> None:
        spans = self.spans
        if len(spans) >= self.limit:
            self.dropped += 1
            return
        spans.append(span)
        if len(spans) == self.batch:
            self.ready.set()

    def take(self) -> list[Span]:
        spans = self.spans
        return [spans.popleft() for _ in range(min(len(spans), self.batch))]


_queue = _Queue(0, 1)  # setup() makes the real one


class _Exporter:
    """The thread that posts queued spans as OTLP/HTTP protobuf, one request per batch
    over one kept connection; a batch the collector cannot take after a few tries
    (429, 502, 503, 504 or no connection) is dropped with one log line."""

    def __init__(self, config: Config, encoder: Encoder, queue: _Queue) -> None:
        self.config, self.encoder, self.queue = config, encoder, queue
        self.pid = os.getpid()
        url = urlsplit(config.url)
        self.path = url.path + (f"?{url.query}" if url.query else "")
        self.headers = {
            **config.headers,
            "content-type": "application/x-protobuf",
            "user-agent": "notify",
        }
        if config.gzip:
            self.headers["content-encoding"] = "gzip"
        self.connect: Callable[[], http.client.HTTPConnection]
        if url.scheme == "https":
            context = ssl.create_default_context(cafile=config.ca_file)
            if config.client_cert is not None:
                context.load_cert_chain(*config.client_cert)
            self.connect = lambda: http.client.HTTPSConnection(
                url.hostname or "", url.port, timeout=config.timeout_s, context=context
            )
        else:
            self.connect = lambda: http.client.HTTPConnection(
                url.hostname or "", url.port, timeout=config.timeout_s
            )
        self.conn: http.client.HTTPConnection | None = None
        self.stopping = False
        self.until = float("inf")  # the shutdown's deadline
        self.reported, self.reported_at = 0, -DROPS_LOGGED_EVERY_S
        self.thread = threading.Thread(target=self.run, name="notify-spans", daemon=True)

    def run(self) -> None:
        """Export full batches as they fill, everything every OTEL_BSP_SCHEDULE_DELAY,
        and at the end."""
        queue = self.queue
        while not self.stopping:
            full = queue.ready.wait(self.config.delay_s)
            queue.ready.clear()
            self.flush(everything=not full)
        self.flush(everything=True)
        self.report_drops(final=True)
        if self.conn is not None:
            self.conn.close()

    def stop(self) -> None:
        """Export what is queued, within the exporter's timeout, and end the thread."""
        self.until = time.monotonic() + self.config.timeout_s
        self.stopping = True
        self.queue.ready.set()
        self.thread.join(self.config.timeout_s + 1.0)

    def flush(self, everything: bool) -> None:
        spans, size = self.queue.spans, self.queue.batch
        while (len(spans) >= size or (everything and spans)) and time.monotonic() < self.until:
            batch = self.queue.take()
            try:
                self.export(batch)
            except Exception:  # a bug here must not end the thread: spans would pile up
                log.exception("%d spans dropped: they could not be exported", len(batch))
            self.report_drops(final=False)

    def report_drops(self, final: bool) -> None:
        dropped, now = self.queue.dropped, time.monotonic()
        if dropped > self.reported and (final or now - self.reported_at >= DROPS_LOGGED_EVERY_S):
            log.warning(
                "%d spans dropped: more than OTEL_BSP_MAX_QUEUE_SIZE=%d waited for export",
                dropped - self.reported,
                self.queue.limit,
            )
            self.reported, self.reported_at = dropped, now

    def export(self, batch: list[Span]) -> None:
        body = self.encoder.request(batch)
        if self.config.gzip:
            body = gzip.compress(body, compresslevel=6)
        deadline = min(time.monotonic() + self.config.timeout_s, self.until)
        problem = ""
        for attempt in range(ATTEMPTS):
            wait = BACKOFF_S * 2**attempt * random.uniform(0.8, 1.2)
            try:
                status, retry_after = self.post(body, deadline)
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 300:
                    return
                problem = f"HTTP {status}"
                if status not in RETRYABLE:
                    break
                if retry_after is not None and retry_after.strip().isdigit():
                    wait = float(retry_after)
            if time.monotonic() + wait >= deadline:
                break
            time.sleep(wait)
        log.warning(
            "%d spans dropped: the export to %s failed (%s)", len(batch), self.config.url, problem
        )

    def post(self, body: bytes, deadline: float) -> tuple[int, str | None]:
        """Status and Retry-After of one POST; a kept connection the collector has
        closed meanwhile is opened anew once, at once."""
        for fresh in (self.conn is None, True):
            if self.conn is None:
                self.conn = self.connect()
            self.conn.timeout = max(0.001, deadline - time.monotonic())
            if self.conn.sock is not None:
                self.conn.sock.settimeout(self.conn.timeout)
            try:
                self.conn.request("POST", self.path, body, self.headers)
                answer = self.conn.getresponse()
                answer.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if fresh:
                    raise
                continue
            if answer.will_close:
                self.conn.close()
                self.conn = None
            return answer.status, answer.getheader("retry-after")
        raise AssertionError("unreachable: the second try is on a fresh connection")


_exporter: _Exporter | None = None


def resource(config: Config) -> list[tuple[str, Value]]:
    """The process's resource attributes: service.name first, then the SDK's own
    (telemetry.sdk.*), then OTEL_RESOURCE_ATTRIBUTES."""
    own: dict[str, Value] = {
        "service.name": config.resource["service.name"],
        "telemetry.sdk.name": "notify",
        "telemetry.sdk.language": "python",
    }
    return list({**own, **config.resource}.items())


def setup(role: str) -> bool:
    """Start tracing this process as ``role`` (gateway, dispatcher, worker) when the
    environment asks for it; whether it does. Spans still queued are exported at exit."""
    global ENABLED, _exporter, _queue, _sampler
    if wanted() is None:
        return False
    if ENABLED and _exporter is not None and _exporter.pid == os.getpid():
        return True
    config = read(os.environ, role)
    _sampler = config.sampler
    _queue = _Queue(config.max_queue, config.max_batch)
    _exporter = _Exporter(config, Encoder(resource(config), "notify"), _queue)
    _exporter.thread.start()
    logs.span_ids = current_ids
    atexit.unregister(shutdown)
    atexit.register(shutdown)
    ENABLED = True
    return True


def shutdown() -> None:
    """Export what is queued, within the exporter's timeout, and stop (at exit; a Celery
    pool process calls it too, as it may leave by ``os._exit``)."""
    global ENABLED, _exporter
    exporter, _exporter = _exporter, None
    ENABLED = False
    logs.span_ids = None
    if exporter is not None and exporter.pid == os.getpid():
        exporter.stop()
