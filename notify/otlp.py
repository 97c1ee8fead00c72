"""OTLP trace export requests, encoded by hand in the protobuf wire format (pure).

notify.tracing sends its spans as one ``ExportTraceServiceRequest`` per batch
(opentelemetry-proto's ``collector/trace/v1/trace_service.proto``); the unit tests decode
what this module writes with opentelemetry-proto and compare every field.

Encoding is much of what a span costs, so it is done with as few Python operations as
can be: every tag is a constant, the resource and scope are encoded once, a span name
or an attribute key once per process (an attribute from a template), a string
attribute once while it recurs (the system, the channel), a span's ids from the hex
its traceparent has (with their tags, in one ``a2b_hex``) and its times and flags in
one ``struct`` call, in one loop over a batch whose pieces are joined once. A publish
and its append, which every publish makes, come as one object (PublishData) and are
written at once: both spans from one template, one ``struct`` and one ``a2b_hex``.

Fields are written in any order, as protobuf allows: where a template needs them
adjacent (a span's ids, then the next span's head and ids), they are.

The field numbers, from ``trace.proto``, ``common.proto`` and ``resource.proto``:

- ExportTraceServiceRequest: resource_spans 1
- ResourceSpans: resource 1, scope_spans 2; Resource: attributes 1
- ScopeSpans: scope 1, spans 2; InstrumentationScope: name 1
- Span: trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6 (enum),
  start_time_unix_nano 7 and end_time_unix_nano 8 (fixed64), attributes 9,
  status 15, flags 16 (fixed32); Status: message 2, code 3 (enum, 2 = error)
- KeyValue: key 1, value 2; AnyValue: string 1, bool 2, int 3 (int64), double 4
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

Value = str | int | bool | float
Attributes = Mapping[str, Value]
NO_ATTRIBUTES: Attributes = MappingProxyType({})

KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
"""OpenTelemetry's span kinds by their lower-case names, as ``Span.kind`` numbers them."""

SAMPLED = 0x01
"""The W3C trace flag that says the trace is recorded."""
HAS_IS_REMOTE, IS_REMOTE = 0x100, 0x200
"""Span.flags bits: whether the parent's locality is told, and whether it is remote."""

_SMALL = [bytes((n,)) if n < 0x80 else bytes((n & 0x7F | 0x80, n >> 7)) for n in range(0x4000)]
"""The varints of 0 to 16383, made once: every length a span's message has, and more."""


def varint(n: int) -> bytes:
    """``n`` (0 <= n < 2**64) as a base-128 varint."""
    if n < 0x4000:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, its length, its bytes."""
    return tag + varint(len(payload)) + payload


_INT64 = (1 << 64) - 1
_DOUBLE = struct.Struct("<d")


def any_value(value: Value) -> bytes:
    """An AnyValue: a string, a bool, an int64 (two's complement for a negative one,
    as protobuf does: ten bytes) or a double; anything else as its ``str``."""
    if isinstance(value, str):
        return field(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value & _INT64)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    return field(b"\x0a", str(value).encode())


def key_value(tag: bytes, key: str, value: Value) -> bytes:
    """One attribute, as the KeyValue field ``tag`` of the message that holds it."""
    return field(tag, field(b"\x0a", key.encode()) + field(b"\x12", any_value(value)))


class KeyForms:
    """The Span.attributes field (tag 4a) of an attribute of a known key, made from
    templates: each key is encoded once (notify's keys are a few dozen constants)."""

    def __init__(self) -> None:
        self.forms: dict[str, tuple[bytes, int, bytes, int]] = {}

    def encode(self, key: str, value: Value) -> bytes:
        form = self.forms.get(key)
        if form is None:
            form = self.forms[key] = self.learn(key)
        if type(value) is str:
            data = value.encode()
            n = len(data)
            if form[1] + n < 0x80:  # every length is one byte: the template fits
                return form[0] % (form[1] + n, n + 2, n, data)
        elif type(value) is int and 0 <= value < 0x4000 and form[3] < 0x7E:
            data = _SMALL[value]
            return form[2] % (form[3] + len(data), len(data) + 1, data)
        return key_value(b"\x4a", key, value)

    @staticmethod
    def learn(key: str) -> tuple[bytes, int, bytes, int]:
        """The template of the whole field for a short string value (its lengths and
        bytes to fill in) and the field's length less the value's; the same for an
        int below 16384."""
        encoded = field(b"\x0a", key.encode()).replace(b"%", b"%%")
        size = len(encoded) - encoded.count(b"%%")
        return (
            b"\x4a%c" + encoded + b"\x12%c\x0a%c%b",
            size + 4,
            b"\x4a%c" + encoded + b"\x12%c\x18%b",
            size + 3,
        )


class SpanData(Protocol):
    """What an ended span tells the encoder (notify.tracing.Span): its ids in hex, as
    a ``traceparent`` has them."""

    @property
    def trace_id(self) -> str: ...  # 32 hex digits
    @property
    def span_id(self) -> str: ...  # 16 hex digits
    @property
    def parent_id(self) -> str: ...  # 16 hex digits, "" for a root span
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...  # a key of KINDS
    @property
    def start_ns(self) -> int: ...
    @property
    def end_ns(self) -> int: ...
    @property
    def flags(self) -> int: ...  # W3C trace flags | HAS_IS_REMOTE | IS_REMOTE
    @property
    def attributes(self) -> Attributes: ...
    @property
    def error(self) -> str | None: ...  # status error with this message, else unset
    @property
    def append_start(self) -> int: ...  # not 0: a publish, with its append (PublishData)


class PublishData(SpanData, Protocol):
    """A ``notify.publish`` span that holds its ``notify.append`` child (the Redis
    write), recorded in one object and encoded at once, as the publish path is every
    gateway's hottest: the publish is labelled with the first event stored and their
    count (:data:`PUBLISHED`), the append is a child of it (:data:`APPENDED`)."""

    @property
    def append_id(self) -> str: ...  # the append's span id, 16 hex digits
    @property
    def append_end(self) -> int: ...  # 0 while it writes
    @property
    def first(self) -> tuple[str, str] | None: ...  # the first event stored: id, channel
    @property
    def count(self) -> int: ...  # how many were stored, once first is set


PUBLISH = ("notify.publish", "producer")
APPEND = ("notify.append", "client", {"db.system.name": "redis"})
"""The names, kinds and fixed attributes of the two spans of a PublishData."""


def published(first: tuple[str, str], count: int) -> dict[str, Value]:
    """The attributes of a publish span that stored ``count`` events, ``first`` first."""
    return {
        "messaging.system": "notify",
        "messaging.message.id": first[0],
        "messaging.destination.name": first[1],
        "messaging.batch.message_count": count,
    }


# The fixed-size fields of a span, with their tags: start and end time, flags. A span's
# ids are written from their hex with their tags (trace_id 0a 10, span_id 12 08,
# parent_span_id 22 08), in one a2b_hex.
_TIMES = struct.Struct("<BQBQHI")
_START_TAG, _END_TAG, _FLAGS_TAG = 0x39, 0x41, 0x0185  # 39, 41, 85 01
CHILD_FLAGS = HAS_IS_REMOTE | SAMPLED
"""The flags of a sampled span whose parent is in the same process (an append's)."""
_LONGEST_ID = 101
"""The longest event id (bytes) the publish template takes: its lengths are one byte."""
_fromhex = binascii.a2b_hex


class Encoder:
    """ExportTraceServiceRequest bytes for batches of spans of one resource (a process)
    and one instrumentation scope."""

    KEEP = 4096
    """Attributes kept encoded, at most (then all are let go)."""

    def __init__(self, resource: Iterable[tuple[str, Value]], scope: str) -> None:
        encoded = b"".join(key_value(b"\x0a", k, v) for k, v in resource)
        self.resource = field(b"\x0a", encoded)  # ResourceSpans.resource
        self.scope = field(b"\x0a", field(b"\x0a", scope.encode()))  # ScopeSpans.scope
        self.names: dict[str, tuple[str, bytes, int]] = {}  # name -> kind, their fields
        self.forms = KeyForms()
        # (key, value) -> the value's type and the attribute's field: a value that
        # recurs (the system, the channel, a count) is made once; the type tells 1
        # from 1.0 and True, which are the same dictionary key
        self.kept: dict[tuple[str, Value], tuple[type, bytes]] = {}
        self.channels: dict[str, bytes] = {}  # a publish's destination attribute
        self.counts: dict[int, bytes] = {}  # and its count attribute
        # A publish and its append as one bytes template: the publish's head, name and
        # kind, messaging.system, the event id's field (its three lengths, its bytes), the
        # channel's and the count's; then one struct: the publish's times and flags, its
        # ids, the append's head and ids (these from their hex in one call), the append's
        # times and flags; then the append's name, kind and attribute
        publish = name_kind(*PUBLISH) + key_value(b"\x4a", "messaging.system", "notify")
        self.id_key = field(b"\x0a", b"messaging.message.id")
        append = name_kind(*APPEND[:2]) + b"".join(
            key_value(b"\x4a", k, v) for k, v in APPEND[2].items()
        )
        append_size = 38 + _TIMES.size + len(append)  # a child's ids: 38 bytes
        assert append_size < 0x80, "the append's length is one byte"
        self.append_head = f"12{append_size:02x}"
        self.publish_size = len(publish) + 6 + len(self.id_key) + _TIMES.size
        ids = 40 + 38  # the publish's (with its parent's), the append's head and ids
        self.with_parent = struct.Struct(f"<BQBQHI{ids}sBQBQHI").pack
        self.without_parent = struct.Struct(f"<BQBQHI{ids - 10}sBQBQHI").pack
        self.template = (
            b"\x12%b"
            + publish.replace(b"%", b"%%")
            + b"\x4a%c"
            + self.id_key.replace(b"%", b"%%")
            + b"\x12%c\x0a%c%b%b%b%b"
            + append.replace(b"%", b"%%")
        )

    def request(self, spans: Iterable[SpanData]) -> bytes:
        """The ExportTraceServiceRequest for ``spans``."""
        parts = [b"", b"", b"", b"", b"", self.scope]
        size = len(self.scope) + self.encode(spans, parts)  # of ScopeSpans
        parts[0:5] = [
            b"\x0a",  # ExportTraceServiceRequest.resource_spans
            varint(len(self.resource) + 1 + len(varint(size)) + size),
            self.resource,
            b"\x12",  # ResourceSpans.scope_spans
            varint(size),
        ]
        return b"".join(parts)

    def encode(self, spans: Iterable[SpanData], parts: list[bytes]) -> int:
        """Append the ScopeSpans.spans fields of ``spans`` to ``parts``; their size.

        One loop does it all, inline (a call per span or attribute would be a good
        part of its cost): a publish with its append from one template, a span's ids
        from its hex in one call, its times in one struct, its name and kind as made
        once per name, its attributes as kept or made, its status when it failed."""
        names, kept, encode = self.names, self.kept, self.forms.encode
        channels, counts, template = self.channels, self.counts, self.template
        with_parent, without_parent = self.with_parent, self.without_parent
        append_head, publish_size = self.append_head, self.publish_size
        id_size = len(self.id_key) + 4  # of the event id's KeyValue, less the id
        times = _TIMES.pack
        append, extend = parts.append, parts.extend
        size = 0
        for s in spans:
            p = s.parent_id
            if s.append_start:
                d: PublishData = s  # type: ignore[assignment]  # as append_start says
                first = d.first
                if first is None or d.error is not None or d.attributes:
                    size += self.encode(expand(d), parts)  # not the common case
                    continue
                event = first[0].encode()
                n = len(event)
                channel = channels.get(first[1])
                if channel is None:
                    if len(channels) >= self.KEEP:
                        channels.clear()
                    channel = channels[first[1]] = key_value(
                        b"\x4a", "messaging.destination.name", first[1]
                    )
                count = counts.get(d.count)
                if count is None:
                    if len(counts) >= self.KEEP:
                        counts.clear()
                    count = counts[d.count] = key_value(
                        b"\x4a", "messaging.batch.message_count", d.count
                    )
                if n > _LONGEST_ID:
                    size += self.encode(expand(d), parts)
                    continue
                trace, span_id, append_id = d.trace_id, d.span_id, d.append_id
                if p:
                    pack = with_parent
                    ids = _fromhex(
                        f"0a10{trace}1208{span_id}2208{p}"
                        f"{append_head}0a10{trace}1208{append_id}2208{span_id}"
                    )
                    n_a = publish_size + 38 + n + len(channel) + len(count)
                else:
                    pack = without_parent
                    ids = _fromhex(
                        f"0a10{trace}1208{span_id}{append_head}0a10{trace}1208{append_id}2208{span_id}"
                    )
                    n_a = publish_size + 28 + n + len(channel) + len(count)
                piece = template % (
                    _SMALL[n_a] if n_a < 0x4000 else varint(n_a),
                    id_size + n,
                    n + 2,
                    n,
                    event,
                    channel,
                    count,
                    pack(
                        _START_TAG,
                        d.start_ns,
                        _END_TAG,
                        d.end_ns,
                        _FLAGS_TAG,
                        d.flags,
                        ids,
                        _START_TAG,
                        d.append_start,
                        _END_TAG,
                        d.append_end,
                        _FLAGS_TAG,
                        CHILD_FLAGS,
                    ),
                )
                append(piece)
                size += len(piece)
                continue
            if p:
                ids = _fromhex(f"0a10{s.trace_id}1208{s.span_id}2208{p}")
            else:
                ids = _fromhex(f"0a10{s.trace_id}1208{s.span_id}")
            fixed = times(_START_TAG, s.start_ns, _END_TAG, s.end_ns, _FLAGS_TAG, s.flags)
            named = names.get(s.name)
            if named is None or named[0] != s.kind:
                encoded = name_kind(s.name, s.kind)
                named = names[s.name] = (s.kind, encoded, len(encoded))
            attributes = b""
            if s.attributes:
                for item in s.attributes.items():
                    made = kept.get(item)
                    if made is None or made[0] is not type(item[1]):
                        if len(kept) >= self.KEEP:
                            kept.clear()
                        made = kept[item] = (type(item[1]), encode(*item))
                    attributes += made[1]
            n = len(ids) + _TIMES.size + named[2] + len(attributes)
            if s.error is None:
                head = _SMALL[n] if n < 0x4000 else varint(n)
                extend((b"\x12", head, ids, fixed, named[1], attributes))
            else:
                failed = status(s.error)
                n += len(failed)
                head = varint(n)
                extend((b"\x12", head, ids, fixed, named[1], attributes, failed))
            size += 1 + len(head) + n
        return size


@dataclass(frozen=True, slots=True)
class Ended:
    """One span of a PublishData, as any other span is encoded."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    flags: int
    start_ns: int
    end_ns: int
    attributes: Attributes
    error: str | None
    append_start: int = 0


def expand(d: PublishData) -> tuple[Ended, ...]:
    """The publish and its append (if it began) as two spans. A failed append ended with
    the publish, failed as it did (its exception went through the publish); the publish
    is labelled with what it was given, then with what was stored (as the publish
    path labels it last)."""
    attributes = dict(d.attributes)
    if d.first is not None:
        attributes.update(published(d.first, d.count))
    publish = Ended(
        *PUBLISH,
        d.trace_id,
        d.span_id,
        d.parent_id,
        d.flags,
        d.start_ns,
        d.end_ns,
        attributes,
        d.error,
    )
    if not d.append_start:
        return (publish,)
    name, kind, labels = APPEND
    append = Ended(
        name,
        kind,
        d.trace_id,
        d.append_id,
        d.span_id,
        CHILD_FLAGS,
        d.append_start,
        d.append_end or d.end_ns,
        labels,
        d.error if d.first is None else None,
    )
    return publish, append


def name_kind(name: str, kind: str) -> bytes:
    """Span.name and Span.kind."""
    return field(b"\x2a", name.encode()) + b"\x30" + varint(KINDS[kind])


def status(error: str) -> bytes:
    """Span.status: an error with the message ``error``."""
    return field(b"\x7a", field(b"\x12", error.encode()) + b"\x18\x02")
