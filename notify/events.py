"""Event validation and encoding (pure).

An accepted event is encoded once, without its id, as ``body``; the event log
prefixes the id it assigns (``{"id":"<id>",`` + body[1:]) so the stored JSON is the
exact envelope every consumer sees.
"""

from __future__ import annotations

import json
import re
import time as _time
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from notify.channels import Remembered, plainly_valid_channel, validate_channel
from notify.errors import Findings, InvalidCursor, InvalidEvent, InvalidInput, TooLarge

TYPE_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
plainly_valid_type = Remembered(TYPE_RE.fullmatch)
MAX_ORIGIN = 128
MAX_ID_OVERHEAD = len('"id":"18446744073709551615-18446744073709551615",')

_DIGITS_MAPPED = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_NINETEEN_DIGITS = b"0" * 19
_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1


def loads(raw: bytes | str, field: str = "body") -> Any:
    """JSON as orjson parses it, refusing integers that it would change.

    orjson keeps integers from -2**63 to 2**64-1 exactly and turns any other into a
    float (123456789012345678901234567890 comes back as 1.2345678901234568e+29): an
    event's data would be stored altered. Such an integer has at least 19 digits, so
    a text without a run of 19 digits is taken as parsed (a translate and a search,
    about 0.1 µs per event), and only the rare other one is read again by the
    standard library, whose integers are exact, to find out.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{field} is not valid JSON: {exc}", field=field) from exc
    data = raw if isinstance(raw, bytes) else raw.encode()
    if _NINETEEN_DIGITS in data.translate(_DIGITS_MAPPED):
        try:
            json.loads(data, parse_int=_exact_int)
        except IntegerOutOfRange as exc:
            raise InvalidInput(
                f"the integer {exc.text[:40]} is outside -2^63..2^64-1 and would lose"
                " precision; send it as a string",
                field=field,
            ) from None
        except RecursionError:
            raise InvalidInput(f"{field} nests too deeply", field=field) from None
        except ValueError:
            pass  # valid to orjson: its integers, the only question here, were in range
    return value


class IntegerOutOfRange(ValueError):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _exact_int(text: str) -> int:
    n = int(text)
    if not _I64_MIN <= n <= _U64_MAX:
        raise IntegerOutOfRange(text)
    return n


_ID_RE = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_U64 = 2**64 - 1
EVENT_FIELDS = frozenset({"channel", "type", "data", "origin"})


class EventDraft(NamedTuple):
    """A validated event waiting for its id (a named tuple: cheap to build per event)."""

    channel: str
    type: str
    body: bytes  # JSON object without "id", starting with '{'
    origin: str = ""


def now_rfc3339(now: datetime | None = None) -> str:
    """UTC to the millisecond (``2026-11-27T10:39:01.123Z``)."""
    if now is not None:
        return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    global _second, _prefix
    t = _time.time()
    second = int(t)
    if second != _second:  # formatting the date is most of the cost: once a second
        _second, _prefix = second, _time.strftime("%Y-%m-%dT%H:%M:%S.", _time.gmtime(second))
    return f"{_prefix}{int((t - second) * 1000):03d}Z"


_second = -1
_prefix = ""


def validate_type(value: object, field: str = "type") -> str:
    if not isinstance(value, str) or not TYPE_RE.fullmatch(value):
        raise InvalidEvent("type must be 1-128 characters of [A-Za-z0-9_.:-]", field=field)
    return value


def draft(
    raw: object,
    *,
    max_bytes: int,
    time: str | None = None,
    index: int | None = None,
    parsed: bool = False,
    traceparent: str | None = None,
) -> EventDraft:
    """Validate one client-supplied event object and encode it (``parsed`` and
    ``traceparent``: as for :func:`encode_draft`).

    ``index`` is the event's place in a batch, named in error fields (``events[3].``).
    The common well-formed event is recognised by a few cheap checks; anything else
    goes through :func:`checked_draft`, which accepts or names exactly what is wrong.
    """
    if type(raw) is dict and "data" in raw and len(raw) <= 4:
        channel, type_, origin = raw.get("channel"), raw.get("type"), raw.get("origin")
        if (
            len(raw) == (3 if origin is None else 4)
            and plainly_valid_channel(channel)
            and plainly_valid_type(type_)
            and (origin is None or (isinstance(origin, str) and len(origin) <= MAX_ORIGIN))
        ):
            try:
                return encode_draft(
                    channel,
                    type_,
                    raw["data"],
                    origin,
                    max_bytes=max_bytes,
                    time=time,
                    parsed=parsed,
                    traceparent=traceparent,
                )
            except (InvalidEvent, TooLarge):
                pass  # checked_draft raises it again, naming the event's place
    return checked_draft(
        raw,
        max_bytes=max_bytes,
        time=time,
        prefix="" if index is None else f"events[{index}].",
        parsed=parsed,
        traceparent=traceparent,
    )


def checked_draft(
    raw: object,
    *,
    max_bytes: int,
    time: str | None,
    prefix: str,
    parsed: bool = False,
    traceparent: str | None = None,
) -> EventDraft:
    """:func:`draft`, field by field: raises the first problem found, with every
    problem found in its ``errors``."""
    if not isinstance(raw, dict):
        raise InvalidEvent("an event must be a JSON object", field=prefix.rstrip(".") or "body")
    found = Findings()
    for name in sorted(raw.keys() - EVENT_FIELDS):
        found.add(InvalidEvent(f"unknown field {name!r}", field=prefix + name))
    channel = type_ = None
    if "channel" not in raw:
        found.add(InvalidEvent("channel is required", field=prefix + "channel"))
    else:
        channel = found.attempt(validate_channel, raw["channel"], field=prefix + "channel")
    if "type" not in raw:
        found.add(InvalidEvent("type is required", field=prefix + "type"))
    else:
        type_ = found.attempt(validate_type, raw["type"], field=prefix + "type")
    if "data" not in raw:
        found.add(InvalidEvent("data is required (it may be null)", field=prefix + "data"))
    origin = raw.get("origin")
    if origin is not None and (not isinstance(origin, str) or len(origin) > MAX_ORIGIN):
        found.add(
            InvalidEvent(
                f"origin must be a string of at most {MAX_ORIGIN} characters",
                field=prefix + "origin",
            )
        )
    found.raise_any()
    assert channel is not None and type_ is not None  # else raise_any raised
    return encode_draft(
        channel,
        type_,
        raw["data"],
        origin,
        max_bytes=max_bytes,
        time=time,
        prefix=prefix,
        parsed=parsed,
        traceparent=traceparent,
    )


MAX_DEPTH = 254
"""orjson's own nesting limit."""


def check_data(data: Any, field: str = "data") -> None:
    """Refuse what JSON cannot carry as given: NaN and infinities (orjson would write
    ``null``), integers outside -2^63..2^64-1, keys that are not strings, and types
    other than dict, list, tuple, str, int, float, bool and None (orjson would
    silently write a dataclass or a datetime). Data parsed from JSON text by
    :func:`loads` is plain already; a Python producer's data is checked here, so
    every way in stores the same events."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        kind = type(value)
        if kind is str or kind is bool or value is None:
            continue
        if kind is int:
            if not _I64_MIN <= value <= _U64_MAX:
                raise InvalidEvent(
                    "integers must be within -2^63..2^64-1; send others as strings", field=field
                )
        elif kind is float:
            if value != value or value in (_INF, -_INF):
                raise InvalidEvent("NaN and Infinity are not JSON numbers", field=field)
        elif depth >= MAX_DEPTH:
            raise InvalidEvent(f"{field} nests too deeply", field=field)
        elif kind is dict:
            for key, item in value.items():
                if type(key) is not str:
                    raise InvalidEvent("object keys must be strings", field=field)
                stack.append((item, depth + 1))
        elif kind is list or kind is tuple:
            stack.extend((item, depth + 1) for item in value)
        else:
            raise InvalidEvent(f"{kind.__name__} is not a JSON value", field=field)


_INF = float("inf")


def encode_draft(
    channel: str,
    type_: str,
    data: Any,
    origin: str | None,
    *,
    max_bytes: int,
    time: str | None = None,
    prefix: str = "",
    parsed: bool = False,
    ce: dict[str, Any] | None = None,
    traceparent: str | None = None,
) -> EventDraft:
    """Encode a validated event; ``parsed`` says ``data`` came from :func:`loads` (plain
    JSON already), else it is checked with :func:`check_data`. ``traceparent`` (one that
    :func:`valid_traceparent` returned) is stored as the envelope's last field, where
    :func:`stored_traceparent` finds it without parsing the envelope."""
    if not parsed:
        check_data(data, prefix + "data")
    envelope: dict[str, Any] = {
        "channel": channel,
        "type": type_,
        "data": data,
        "time": time or now_rfc3339(),
    }
    if origin is not None:
        envelope["origin"] = origin
    if ce:
        envelope["ce"] = ce  # a CloudEvent's own attributes (notify.cloudevents)
    if traceparent is not None:
        # the CloudEvents Distributed Tracing extension's attribute, for every event
        envelope["traceparent"] = traceparent
    try:
        body = orjson.dumps(envelope)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidEvent(f"data is not encodable as JSON: {exc}", field=prefix + "data") from exc
    if len(body) + MAX_ID_OVERHEAD > max_bytes:
        raise TooLarge(
            f"event is {len(body) + MAX_ID_OVERHEAD} bytes encoded, over the limit of {max_bytes}",
            field=prefix.rstrip(".") or None,
        )
    return EventDraft(channel, type_, body, origin or "")  # positional: cheaper per event


def with_id(event_id: str, body: bytes) -> bytes:
    """The stored envelope: the draft body with its id first."""
    return b'{"id":"' + event_id.encode() + b'",' + body[1:]


def parse_id(value: object, field: str = "last_event_id") -> tuple[int, int]:
    """Parse a stream id ``<ms>-<seq>`` (the server's own format) for comparison."""
    if not isinstance(value, str):
        raise InvalidCursor("an event id must be a string", field=field)
    m = _ID_RE.fullmatch(value)
    if not m:
        raise InvalidCursor(f"{value[:64]!r} is not an event id", field=field)
    ms, seq = int(m.group(1)), int(m.group(2))
    if ms > _U64 or seq > _U64:
        raise InvalidCursor(f"{value[:64]!r} is out of range", field=field)
    return ms, seq


def is_last_possible(entry_id: str) -> bool:
    """Whether no id can follow this one (Redis then refuses it as an exclusive start)."""
    return parse_id(entry_id) == (_U64, _U64)


def decode(stored: bytes) -> dict[str, Any]:
    value = orjson.loads(stored)
    assert isinstance(value, dict)
    return value


_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_NO_TRACE, _NO_PARENT = "0" * 32, "0" * 16
TRACEPARENT_LENGTH = 55


def valid_traceparent(value: object) -> str | None:
    """A W3C Trace Context ``traceparent`` in its version-00 form, or None for anything
    else: the specification has a receiver ignore a malformed one rather than refuse the
    request, so every way in (HTTP header, WebSocket field, CloudEvents attribute) does.

    Version 00 is exactly ``00-<trace-id>-<parent-id>-<flags>`` in lower-case hex, with
    neither id all zeros. A later version is read as the specification says (its first
    55 characters, then ``-`` or the end) and kept as version 00, the one notify sends
    on; version ``ff`` is invalid."""
    if type(value) is not str or len(value) < TRACEPARENT_LENGTH:
        return None
    m = _TRACEPARENT_RE.match(value)
    if m is None:
        return None
    version, trace_id, parent_id, _ = m.groups()
    if trace_id == _NO_TRACE or parent_id == _NO_PARENT or version == "ff":
        return None
    if len(value) > TRACEPARENT_LENGTH and (version == "00" or value[55] != "-"):
        return None
    return value if version == "00" and len(value) == TRACEPARENT_LENGTH else "00" + value[2:55]


_TRACEPARENT_FIELD = b',"traceparent":"'
_TRACEPARENT_TAIL = len(_TRACEPARENT_FIELD) + TRACEPARENT_LENGTH + 2


def stored_traceparent(body: bytes) -> str | None:
    """The ``traceparent`` of a stored envelope (with or without its id), read from its
    end, where :func:`encode_draft` puts it: readers that only need it (the hub, the
    dispatcher, the workers) never parse the event. Inside a JSON string every quote
    is escaped, so the unescaped tail ``,"traceparent":"…"}`` can only be that field of
    the envelope itself."""
    tail = body[-_TRACEPARENT_TAIL:]
    if tail[: len(_TRACEPARENT_FIELD)] != _TRACEPARENT_FIELD or tail[-2:] != b'"}':
        return None
    return valid_traceparent(tail[len(_TRACEPARENT_FIELD) : -2].decode("ascii", "replace"))
