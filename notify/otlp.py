"""OTLP trace export requests, encoded by hand in the protobuf wire format (pure).

notify.tracing sends its spans as one ``ExportTraceServiceRequest`` per batch
(opentelemetry-proto's ``collector/trace/v1/trace_service.proto``); the unit tests decode
what this module writes with opentelemetry-proto and compare every field.

Encoding is most of what a span costs, so it is done with as few Python operations as
can be: every tag is a constant, the resource and scope are encoded once, a span name
or an attribute key once per process (an attribute from a template), a string
attribute once while it recurs (the system, the channel), and a span's ids, times and
flags in one ``struct`` call, in one loop over a batch whose pieces are joined once.

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

import struct
from collections.abc import Iterable, Mapping
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
    """What an ended span tells the encoder (notify.tracing.Span)."""

    @property
    def trace_id(self) -> bytes: ...  # 16 bytes
    @property
    def span_id(self) -> bytes: ...  # 8 bytes
    @property
    def parent_id(self) -> bytes: ...  # 8 bytes, empty for a root span
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


# The fixed-size fields of a span with their tags (a two-byte tag as a little-endian
# short): trace_id, span_id, start and end time, flags; and parent_span_id if it has one.
_ROOT = struct.Struct("<H16sH8sBQBQHI")
_CHILD = struct.Struct("<H16sH8sBQBQHIH8s")
_TRACE_TAG, _SPAN_TAG, _PARENT_TAG = 0x100A, 0x0812, 0x0822  # 0a 10, 12 08, 22 08
_START_TAG, _END_TAG, _FLAGS_TAG = 0x39, 0x41, 0x0185  # 39, 41, 85 01


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

    def request(self, spans: Iterable[SpanData]) -> bytes:
        """The ExportTraceServiceRequest for ``spans``.

        One loop does it all, inline (a call per span or attribute would be a good
        part of its cost): a span's fixed-size fields in one struct, its name and
        kind as made once per name, its attributes as kept or made, its status when
        it failed; each piece goes to one list, joined once."""
        names, kept, encode = self.names, self.kept, self.forms.encode
        root, child = _ROOT.pack, _CHILD.pack
        parts = [b"", b"", b"", b"", b"", self.scope]
        extend = parts.extend
        size = len(self.scope)  # of ScopeSpans, so far
        for s in spans:
            if s.parent_id:
                fixed = child(
                    _TRACE_TAG,
                    s.trace_id,
                    _SPAN_TAG,
                    s.span_id,
                    _START_TAG,
                    s.start_ns,
                    _END_TAG,
                    s.end_ns,
                    _FLAGS_TAG,
                    s.flags,
                    _PARENT_TAG,
                    s.parent_id,
                )
                n = _CHILD.size
            else:
                fixed = root(
                    _TRACE_TAG,
                    s.trace_id,
                    _SPAN_TAG,
                    s.span_id,
                    _START_TAG,
                    s.start_ns,
                    _END_TAG,
                    s.end_ns,
                    _FLAGS_TAG,
                    s.flags,
                )
                n = _ROOT.size
            named = names.get(s.name)
            if named is None or named[0] != s.kind:
                encoded = field(b"\x2a", s.name.encode()) + b"\x30" + varint(KINDS[s.kind])
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
            n += named[2] + len(attributes)
            if s.error is None:
                head = _SMALL[n] if n < 0x4000 else varint(n)
                extend((b"\x12", head, fixed, named[1], attributes))
            else:
                failed = status(s.error)
                n += len(failed)
                head = varint(n)
                extend((b"\x12", head, fixed, named[1], attributes, failed))
            size += 1 + len(head) + n
        parts[0:5] = [
            b"\x0a",  # ExportTraceServiceRequest.resource_spans
            varint(len(self.resource) + 1 + len(varint(size)) + size),
            self.resource,
            b"\x12",  # ResourceSpans.scope_spans
            varint(size),
        ]
        return b"".join(parts)


def status(error: str) -> bytes:
    """Span.status: an error with the message ``error``."""
    return field(b"\x7a", field(b"\x12", error.encode()) + b"\x18\x02")
