"""CloudEvents 1.0 in: structured, batched and binary HTTP modes (pure).

A CloudEvent becomes a notify event: ``type`` and ``data`` map to the envelope, the
channel is the ``channel`` extension attribute (else the ``?channel=`` parameter), and
every other attribute (``id``, ``source``, ``specversion``, ``time``, ``subject``,
``datacontenttype``, ``dataschema``, extensions) is kept on the envelope under
``ce`` and given back by the ``cloudevents`` webhook format. Data that is not JSON
(``data_base64``, or a binary-mode body of another content type) is kept as its
base64 text in ``data`` with ``"ce": {"data_base64": true}``.

``source`` + ``id`` identify a CloudEvent, so they make the request's idempotency key.
Errors name the attribute (``events[2].specversion`` in a batch).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote

import orjson

from notify.channels import validate_channel
from notify.errors import InvalidEvent
from notify.events import (
    EventDraft,
    encode_draft,
    loads,
    now_rfc3339,
    valid_traceparent,
    validate_type,
)

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
SPECVERSION = "1.0"
HEADER_PREFIX = "ce-"
REQUIRED = ("specversion", "id", "source", "type")
MAPPED = frozenset({"type", "data", "data_base64", "channel"})
_NAME = re.compile(r"[a-z0-9]{1,64}")
_JSON_TYPE = re.compile(r"^(application|text)/([a-zA-Z0-9\-.]+\+)?json\s*(;.*)?$")
MAX_ATTRIBUTE = 2048
_STRINGS = frozenset({"specversion", "id", "source", "type", "time", "subject", "dataschema"})


class Incoming(NamedTuple):
    channel: str
    type: str
    data: Any
    ce: dict[str, Any]


def mode(content_type: str | None, has_ce_headers: bool) -> str | None:
    """``binary``, ``structured`` or ``batch`` for a CloudEvents request, else None."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == STRUCTURED:
        return "structured"
    if media == BATCH:
        return "batch"
    return "binary" if has_ce_headers else None


def query_channel(query_string: bytes) -> str | None:
    values = parse_qs(query_string.decode("latin-1")).get("channel")
    return values[0] if values else None


def _attribute(name: str, value: object, field: str) -> Any:
    if name in _STRINGS and (not isinstance(value, str) or not value):
        raise InvalidEvent(f"{name} must be a non-empty string", field=field)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 7.0 is a whole number (CloudEvents Integer; JSON Schema)
    if isinstance(value, bool) or (isinstance(value, int) and -(2**31) <= value < 2**31):
        return value
    if not isinstance(value, str) or len(value) > MAX_ATTRIBUTE:
        raise InvalidEvent(
            f"attribute {name} must be a string (at most {MAX_ATTRIBUTE} characters), "
            "an integer or a boolean",
            field=field,
        )
    return value


def incoming(
    attributes: Mapping[str, Any], data: Any, binary: bool, channel: str | None, prefix: str
) -> Incoming:
    """Validate one CloudEvent's attributes; ``data`` already decoded."""
    for name in REQUIRED:
        if name not in attributes:
            raise InvalidEvent(f"the CloudEvents attribute {name} is required", field=prefix + name)
    if attributes["specversion"] != SPECVERSION:
        raise InvalidEvent(
            f"specversion {str(attributes['specversion'])[:16]!r} is not supported; use 1.0",
            field=prefix + "specversion",
        )
    ce: dict[str, Any] = {}
    for name, value in attributes.items():
        if not _NAME.fullmatch(name):
            raise InvalidEvent(
                "attribute names are 1-64 lower-case letters and digits", field=prefix + name
            )
        checked = _attribute(name, value, prefix + name)
        if name not in MAPPED:
            ce[name] = checked
    type_ = validate_type(attributes["type"], field=prefix + "type")
    chosen = attributes.get("channel", channel)
    if chosen is None:
        raise InvalidEvent(
            "a CloudEvent needs a channel: the channel attribute or ?channel=",
            field=prefix + "channel",
        )
    if binary:
        ce["data_base64"] = True
    return Incoming(validate_channel(chosen, field=prefix + "channel"), type_, data, ce)


def from_structured(raw: object, channel: str | None, prefix: str = "") -> Incoming:
    if not isinstance(raw, dict):
        raise InvalidEvent("a CloudEvent is a JSON object", field=prefix.rstrip(".") or "body")
    attributes = {k: v for k, v in raw.items() if k not in ("data", "data_base64")}
    if "data_base64" in raw:
        if "data" in raw:
            raise InvalidEvent("data and data_base64 exclude each other", field=prefix + "data")
        encoded = raw["data_base64"]
        try:
            if not isinstance(encoded, str):
                raise binascii.Error("not a string")
            base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidEvent(
                f"data_base64 is not base64: {exc}", field=prefix + "data_base64"
            ) from exc
        return incoming(attributes, encoded, True, channel, prefix)
    return incoming(attributes, raw.get("data"), False, channel, prefix)


def from_batch(raw: object, channel: str | None, max_events: int) -> list[Incoming]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= max_events:
        raise InvalidEvent(f"a batch is a JSON array of 1-{max_events} CloudEvents", field="events")
    return [from_structured(e, channel, f"events[{i}].") for i, e in enumerate(raw)]


def from_binary(
    headers: Mapping[str, str], content_type: str | None, body: bytes, channel: str | None
) -> Incoming:
    """Binary mode: attributes in ``ce-*`` headers (percent-encoded), the body is data."""
    attributes = {
        name[len(HEADER_PREFIX) :]: unquote(value)
        for name, value in headers.items()
        if name.startswith(HEADER_PREFIX)
    }
    if content_type:
        attributes["datacontenttype"] = content_type
    if not body:
        return incoming(attributes, None, False, channel, "")
    if content_type is None or _JSON_TYPE.match(content_type):
        return incoming(attributes, loads(body, "body"), False, channel, "")
    if content_type.lower().startswith("text/"):
        try:
            return incoming(attributes, body.decode("utf-8"), False, channel, "")
        except UnicodeDecodeError:
            pass
    return incoming(attributes, base64.b64encode(body).decode(), True, channel, "")


def parse(
    kind: str,
    headers: Mapping[str, str],
    content_type: str | None,
    body: bytes,
    query_string: bytes,
    max_events: int,
) -> list[Incoming]:
    """The CloudEvents of a request in mode ``kind`` (see :func:`mode`)."""
    channel = query_channel(query_string)
    if kind == "binary":
        return [from_binary(headers, content_type, body, channel)]
    raw = loads(body, "body")
    if kind == "batch":
        return from_batch(raw, channel, max_events)
    return [from_structured(raw, channel)]


def drafts(
    events: Sequence[Incoming],
    *,
    max_bytes: int,
    time: str,
    origin: str | None = None,
    traceparent: str | None = None,
) -> list[EventDraft]:
    """The events' drafts; each stores ``traceparent`` (the request's), else its own
    ``traceparent`` attribute when that is valid (it stays under ``ce`` either way)."""
    return [
        encode_draft(
            e.channel,
            e.type,
            e.data,
            origin,
            max_bytes=max_bytes,
            time=time,
            prefix=f"events[{i}]." if len(events) > 1 else "",
            ce=e.ce,
            traceparent=traceparent or valid_traceparent(e.ce.get("traceparent")),
        )
        for i, e in enumerate(events)
    ]


def prepare(
    events: Sequence[Incoming],
    *,
    max_bytes: int,
    origin: str | None = None,
    traceparent: str | None = None,
) -> tuple[list[EventDraft], str]:
    """The drafts to store, stamped now, and the idempotency key ``source`` + ``id``
    make: what every way in (HTTP, WebSocket, ``notify.Publisher``) stores."""
    stored = drafts(
        events, max_bytes=max_bytes, time=now_rfc3339(), origin=origin, traceparent=traceparent
    )
    return stored, idempotency_key(events)


def idempotency_key(events: Sequence[Incoming]) -> str:
    """``source`` + ``id`` of each event, hashed: a repeat is stored once."""
    digest = hashlib.sha256()
    for e in events:
        digest.update(orjson.dumps([e.ce["source"], e.ce["id"]]))
    return "ce:" + digest.hexdigest()
