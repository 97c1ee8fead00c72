"""OpenTelemetry tracing of an event's way through notify, off unless asked for.

Tracing is on in a process when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set and ``OTEL_SDK_DISABLED`` is not
``true``: each role calls :func:`setup` once at its start (a Celery pool process when it
builds its runtime, after the fork). Off, the hot paths check :data:`ENABLED` once,
nothing more, and no thread runs.

On, this module is notify's own small tracer, not OpenTelemetry's SDK, which costs a
publish several times the 10 % the issue allows: a span is a slotted object in a
``ContextVar``, its ids hex taken from a pool that one ``os.urandom`` fills, ended spans
wait in a bounded queue (``OTEL_BSP_MAX_QUEUE_SIZE`` entries, dropped and counted when
full) and a daemon thread posts them every ``OTEL_BSP_SCHEDULE_DELAY`` ms, or as soon
as a batch (``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` entries) waits, as OTLP/HTTP protobuf that
notify.otlp encodes by hand, over one kept connection of its own small HTTP/1.1
client. What every publish pays is kept least: its ``notify.publish`` span holds its
``notify.append`` child (one object, one queue entry, one template to encode), and over
HTTP it is handed on rather than made current (:func:`publish`). The standard variables apply:
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
import gzip
import logging
import os
import random
import re
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import SplitResult, unquote, urlsplit

from notify import logs
from notify.errors import ConfigError, NotifyError
from notify.otlp import (
    HAS_IS_REMOTE,
    IS_REMOTE,
    NO_ATTRIBUTES,
    PUBLISH,
    SAMPLED,
    Attributes,
    Encoder,
    Value,
)

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
NEW_TRACE = HAS_IS_REMOTE  # a root span: its parent, none, is not remote
REMOTE_PARENT = HAS_IS_REMOTE | IS_REMOTE
LOCAL_PARENT = HAS_IS_REMOTE | SAMPLED  # a child of a local span: sampled as it is
S = TypeVar("S", bound="Span")
P = TypeVar("P", bound="_Publishing")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An HTTP header's name (RFC 9110's token)."""


@dataclass(frozen=True, slots=True)
class Sampler:
    """Which spans are recorded. A new trace is when the lower 64 bits of its id fall
    below ``bound`` (``1 << 64``: always, 0: never, else a ratio of them: every process
    decides alike for one trace); with ``follow`` (the ``parentbased_`` samplers), a
    span with a parent is recorded as its parent is."""

    follow: bool
    bound: int
    always: bool  # a new trace is always recorded (bound 1 << 64)

    def __call__(self, trace_id: str, parent: bool | None) -> bool:
        """For a span of the trace ``trace_id`` (32 hex digits) whose parent is
        sampled, sampled out or absent (None: a new trace)."""
        if self.follow and parent is not None:
            return parent
        return int(trace_id[16:], 16) < self.bound


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
    sent = pairs(*headers) if headers else {}
    for name, value in sent.items():
        if not _TOKEN.fullmatch(name) or any(c in value for c in "\r\n\0"):
            problem = f"{name!r} cannot be sent: a header is a token, its value one line"
            raise ConfigError(headers[0] if headers else "", problem)
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
        headers=sent,
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
_object = object.__new__
_span_ids: list[str] = []
_trace_ids: list[str] = []
"""Random ids ready for new spans and traces, as hex: taken with a bare ``pop`` (a call
to make one would be a good part of what a span costs), made 256 at a time."""


def _fresh(ids: list[str], size: int) -> str:
    """A new random id of ``size`` bytes, as hex, as ``ids`` ran out: which it refills
    from one ``os.urandom``. Never all zeros, which is no valid id."""
    made = os.urandom(size * 256).hex(" ", size).split()
    zero = "00" * size
    if zero in made:
        made = [i for i in made if i != zero]
    one = made.pop()
    ids.extend(made)
    return one


def _forget_ids() -> None:
    """A forked child makes its own ids: those made before are its parent's too."""
    _span_ids.clear()
    _trace_ids.clear()


os.register_at_fork(after_in_child=_forget_ids)


class Span:
    """One span: its context and, when sampled, what it records: ids in hex, as its
    ``traceparent`` has them, which it keeps made (the export turns them into bytes),
    times as ``time.time_ns()``. Ended and sampled, it waits in the export queue as it is
    (notify.otlp encodes it). :func:`_start` and :func:`child` make one."""

    __slots__ = (
        "attributes",
        "context",
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
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_id: str  # 16 hex digits, empty for a root span
    context: str  # its traceparent: 00-<trace id>-<span id>-<01 if sampled, else 00>
    flags: int  # SAMPLED | HAS_IS_REMOTE | IS_REMOTE (notify.otlp)
    attributes: Attributes  # replaced, never changed: it may be the caller's
    error: str | None  # the status is an error with this message
    start_ns: int
    end_ns: int  # set as it ends
    token: Token[Span | None]  # set on entering a with block
    append_start = 0  # a span that holds no notify.append (see _Publishing)

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
                queue.dropped += 2 if self.append_start else 1  # with its append


def _fault(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and not (isinstance(exc, NotifyError) and exc.status < 500)


class _Current(Span):
    """A span current within a ``with`` block, which gets the span."""

    __slots__ = ()

    def __enter__(self) -> Span:
        self.token = _current.set(self)
        return self


class _Publishing(Span):
    """The gateway's ``notify.publish`` span, current within a ``with`` block, which
    gets its traceparent. It holds its ``notify.append`` child too (the Redis write:
    :func:`appending`, :meth:`appended`), and what was stored, which labels it: one
    object, one entry of the export queue and one encoding for the two (notify.otlp's
    PublishData), as every publish pays for them. An append still under way as it
    ends failed with it: the exception came through it."""

    __slots__ = ("append_end", "append_id", "append_start", "count", "first")
    name = PUBLISH[0]
    kind = PUBLISH[1]
    append_start: int  # 0 unless its append began
    append_id: str  # the append's span id
    append_end: int  # 0 while it writes
    first: tuple[str, str] | None  # the first event stored: its id and channel
    count: int  # how many were stored

    def __enter__(self) -> str:
        self.token = _current.set(self)
        return self.context

    def appended(self, stored: Sequence[tuple[str, str]]) -> None:
        """End its append: ``stored`` (id, channel) were written. (api/routes/publish.py's
        store() does the same inline: a call is a good part of what it costs.)"""
        self.append_end = _time_ns()
        self.first, self.count = stored[0], len(stored)


class Publish(_Publishing):
    """A ``notify.publish`` span that is not made current (:func:`publish`): a ``with``
    block gets the span itself, and ends it."""

    __slots__ = ()

    def __enter__(self) -> Publish:  # type: ignore[override]
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        """As Span.__exit__ ends a span, the context variable aside (inline: this is
        every publish's)."""
        if self.flags & SAMPLED:
            if exc is not None and _fault(exc):
                self.error = f"{type(exc).__name__}: {exc}"
            self.end_ns = _time_ns()
            queue = _queue
            if len(queue.spans) < queue.limit:
                queue.spans.append(self)
                if len(queue.spans) == queue.batch:
                    queue.ready.set()
            else:
                queue.dropped += 2 if self.append_start else 1


def _identify(made: Span, parent: str | None) -> bool:
    """Give ``made`` its ids and flags, child of the ``parent`` traceparent (a valid
    one) or the first of a new trace; whether it is sampled, as the sampler decides."""
    try:
        made.span_id = _span_ids.pop()
    except IndexError:
        made.span_id = _fresh(_span_ids, 8)
    if parent is None:
        try:
            trace = _trace_ids.pop()
        except IndexError:
            trace = _fresh(_trace_ids, 16)
        sampled = _sampler.always or int(trace[16:], 16) < _sampler.bound
        made.flags, made.parent_id = NEW_TRACE | SAMPLED if sampled else NEW_TRACE, ""
    else:
        trace = parent[3:35]
        sampled = parent[54] in "13579bdf"  # the flags' lowest bit
        if not _sampler.follow:
            sampled = _sampler(trace, None)
        made.flags = REMOTE_PARENT | SAMPLED if sampled else REMOTE_PARENT
        made.parent_id = parent[36:52]
    made.trace_id = trace
    return sampled


def _start(
    cls: type[S], name: str, kind: str, parent: str | None, attributes: Attributes | None
) -> S:
    """A span of ``cls`` started now, child of the ``parent`` traceparent (a valid
    one) or the first of a new trace, sampled as the sampler decides (:func:`_identify`,
    shared with :func:`_publishing`); its attributes set inline (a call is a good part
    of what a span costs)."""
    made = _object(cls)
    sampled = _identify(made, parent)
    made.context = f"00-{made.trace_id}-{made.span_id}-{'01' if sampled else '00'}"
    made.name, made.kind = name, kind
    made.attributes, made.error = attributes or NO_ATTRIBUTES, None
    made.start_ns = _time_ns()
    return made


def traceparent_of(span: Span) -> str:
    return span.context


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
    try:
        span_id = _span_ids.pop()
    except IndexError:
        span_id = _fresh(_span_ids, 8)
    made.name, made.kind, made.flags = name, kind, LOCAL_PARENT
    made.trace_id, made.span_id, made.parent_id = parent.trace_id, span_id, parent.span_id
    made.context = f"00-{parent.trace_id}-{span_id}-01"
    made.attributes, made.error = attributes or NO_ATTRIBUTES, None
    made.start_ns = _time_ns()
    return made


def publishing(traceparent: str | None) -> AbstractContextManager[str | None]:
    """The gateway's ``notify.publish`` span for one publish request, current within
    the block, whose context (``as``) is the traceparent to store with its events; with
    tracing off, the producer's ``traceparent`` as given (propagation costs nothing)."""
    if not ENABLED:
        return nullcontext(traceparent)
    return _publishing(_Publishing, traceparent)


def publish(traceparent: str | None) -> AbstractContextManager[Publish | None]:
    """As :func:`publishing`, but the span (``as``; None with tracing off) is not made
    current: its ``context`` is the traceparent to store, and the caller hands it to
    what writes the events (:func:`appending`). The HTTP publish path's, which spares
    every publish a context variable's set, get and reset."""
    if not ENABLED:
        return nullcontext(None)
    return _publishing(Publish, traceparent)


def _publishing(cls: type[P], traceparent: str | None) -> P:
    """A publish span of ``cls``, as :func:`_start` makes a span, and no more than it
    needs: a sampled-out one records nothing, so it is given nothing to record."""
    made = _object(cls)
    if not _identify(made, traceparent):
        made.context = f"00-{made.trace_id}-{made.span_id}-00"
        return made
    made.context = f"00-{made.trace_id}-{made.span_id}-01"
    made.attributes, made.error, made.append_start = NO_ATTRIBUTES, None, 0
    made.start_ns = _time_ns()
    return made


def appending(span: _Publishing | None = None) -> _Publishing | None:
    """The publish span ``span`` (else the current span, if a publish span), when it
    is recorded, with its ``notify.append`` begun now: the caller writes the events,
    then says what it stored (:meth:`_Publishing.appended`). None for any other."""
    current = span if span is not None else _current.get()
    if not isinstance(current, _Publishing) or not current.flags & SAMPLED:
        return None
    try:
        current.append_id = _span_ids.pop()
    except IndexError:
        current.append_id = _fresh(_span_ids, 8)
    current.append_end, current.first = 0, None
    current.append_start = _time_ns()
    return current


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
    return current.context if current is not None else stored


def current_ids() -> tuple[str, str] | None:
    """The trace and span id of the current span, for log lines (notify.logs)."""
    current = _current.get()
    return (current.trace_id, current.span_id) if current is not None else None


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a (valid) traceparent, for log lines."""
    return traceparent[3:35] if traceparent else None


class _Queue:
    """Ended sampled spans waiting for the exporter: appended by whichever thread ends
    them (a deque's append and popleft are atomic), at most ``limit`` entries, the rest
    dropped and counted; ``ready`` wakes the exporter once ``batch`` entries wait, which
    it posts in one request. An entry is one span, or two: a publish with its append
    (OTEL_BSP_MAX_QUEUE_SIZE and OTEL_BSP_MAX_EXPORT_BATCH_SIZE count entries)."""

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
        """The oldest ``batch`` entries, or all there are."""
        popleft = self.spans.popleft
        return [popleft() for _ in range(min(len(self.spans), self.batch))]


_queue = _Queue(0, 1)  # setup() makes the real one


class AnswerError(Exception):
    """The collector's answer is not HTTP/1.x as this client reads it."""


class _Collector:
    """One kept HTTP/1.1 connection to the collector, for the exporter's POSTs: a
    request is written in one ``sendall``, the answer read with a few ``recv``.
    http.client, which builds a file object and parses every answer's headers with the
    email package, cost ten times the CPU per export (200 us against 20,
    bench/tracing_cost.py), paid by every publish in the gateway.

    An answer's body is read and dropped, by its Content-Length, chunked, or to the
    end of the connection (which is then closed, as when the collector says
    ``Connection: close`` or answers in HTTP/1.0); interim 1xx answers are skipped."""

    MAX_HEAD = 1 << 16
    """The most an answer's status line and headers may take."""

    def __init__(
        self, url: SplitResult, headers: Mapping[str, str], context: ssl.SSLContext | None
    ) -> None:
        host = url.hostname or ""
        self.address = (host, url.port or (443 if context is not None else 80))
        self.context = context
        named = f"[{host}]" if ":" in host else host  # an IPv6 address
        if url.port is not None:
            named += f":{url.port}"
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        lines = [f"POST {path} HTTP/1.1", f"Host: {named}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self.sock: socket.socket | None = None
        self.buf = b""  # read beyond what was asked for

    def post(self, body: bytes, deadline: float) -> tuple[int, str | None]:
        """Status and Retry-After of one POST; a kept connection the collector has
        closed meanwhile is opened anew once, at once."""
        for fresh in (self.sock is None, True):
            try:
                if self.sock is None:
                    self.sock = self.connect(deadline)
                self.sock.settimeout(max(0.001, deadline - time.monotonic()))
                self.sock.sendall(self.head + b"%d\r\n\r\n" % len(body) + body)
                return self.answer()
            except (OSError, AnswerError, ValueError):
                self.close()
                if fresh:
                    raise
        raise AssertionError("unreachable: the second try is on a fresh connection")

    def connect(self, deadline: float) -> socket.socket:
        sock = socket.create_connection(
            self.address, timeout=max(0.001, deadline - time.monotonic())
        )
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.context is not None:
                return self.context.wrap_socket(sock, server_hostname=self.address[0])
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buf = None, b""

    def answer(self) -> tuple[int, str | None]:
        status = 100
        while 100 <= status < 200:  # interim answers have no body
            head = self.read_until(b"\r\n\r\n", self.MAX_HEAD).decode("latin-1").split("\r\n")
            version, _, rest = head[0].partition(" ")
            if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
                raise AnswerError(f"not an HTTP/1.x answer: {head[0][:80]!r}")
            status = int(rest[:3])
        fields: dict[str, str] = {}
        for line in head[1:-2]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        connection = fields.get("connection", "").lower()
        keep = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        length = fields.get("content-length")
        if status in (204, 304):
            pass
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            while size := int(self.read_until(b"\r\n", self.MAX_HEAD).split(b";")[0], 16):
                self.skip(size + 2)  # and its CRLF
            while self.read_until(b"\r\n", self.MAX_HEAD) != b"\r\n":  # trailers
                pass
        elif length is not None and length.isdigit():
            self.skip(int(length))
        else:  # to the end of the connection
            while self.recv():
                pass
            keep = False
        if not keep:
            self.close()
        return status, fields.get("retry-after")

    def recv(self) -> bytes:
        assert self.sock is not None, "connected"
        data = self.sock.recv(1 << 16)
        self.buf += data
        return data

    def read_until(self, end: bytes, most: int) -> bytes:
        """What the answer has next up to and with ``end``."""
        while (at := self.buf.find(end)) < 0:
            if len(self.buf) > most:
                raise AnswerError(f"no {end!r} within {most} bytes")
            if not self.recv():
                raise AnswerError("the collector closed the connection")
        got, self.buf = self.buf[: at + len(end)], self.buf[at + len(end) :]
        return got

    def skip(self, n: int) -> None:
        """Drop the next ``n`` bytes of the answer."""
        while len(self.buf) < n:
            n -= len(self.buf)
            self.buf = b""
            if not self.recv():
                raise AnswerError("the collector closed the connection")
        self.buf = self.buf[n:]


class _Exporter:
    """The thread that posts queued spans as OTLP/HTTP protobuf, one request per batch
    over one kept connection; a batch the collector cannot take after a few tries
    (429, 502, 503, 504 or no connection) is dropped with one log line."""

    def __init__(self, config: Config, encoder: Encoder, queue: _Queue) -> None:
        self.config, self.encoder, self.queue = config, encoder, queue
        self.pid = os.getpid()
        url = urlsplit(config.url)
        headers = {
            **config.headers,
            "content-type": "application/x-protobuf",
            "user-agent": "notify",
        }
        if config.gzip:
            headers["content-encoding"] = "gzip"
        context = None
        if url.scheme == "https":
            context = ssl.create_default_context(cafile=config.ca_file)
            if config.client_cert is not None:
                context.load_cert_chain(*config.client_cert)
        self.collector = _Collector(url, headers, context)
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
        self.collector.close()

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
                status, retry_after = self.collector.post(body, deadline)
            except (OSError, AnswerError, ValueError) as exc:
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
