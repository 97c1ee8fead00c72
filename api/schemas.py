"""JSON Schemas of the OpenAPI document, one per input rule, built from the limits of
the validators that enforce them (notify.channels, notify.events, notify.subscriptions).

A request the schema allows must be one the server accepts, and the reverse as far as
JSON Schema can say it: a generated client (or schemathesis) relies on both. Rules
it cannot say (SSRF targets, Jinja2 syntax, a rule across two fields) are described
and answered 422. tests/unit/test_openapi_schemas.py checks the regular expressions
against the validators.
"""

from __future__ import annotations

from typing import Any

from notify.channels import MAX_LENGTH, MAX_SEGMENT_LENGTH, MAX_SEGMENTS
from notify.events import MAX_ORIGIN, TYPE_RE
from notify.formats import CHAT, FORMATS
from notify.subscriptions import MAX_DIGEST_SECONDS, MAX_TYPES, MAX_URL

Schema = dict[str, Any]

SEGMENT_RE = rf"[A-Za-z0-9_@:-]{{1,{MAX_SEGMENT_LENGTH}}}"
CHANNEL_RE = rf"^{SEGMENT_RE}(?:\.{SEGMENT_RE}){{0,{MAX_SEGMENTS - 1}}}$"
PATTERN_RE = rf"^(?:(?:{SEGMENT_RE}|\*)\.){{0,{MAX_SEGMENTS - 1}}}(?:{SEGMENT_RE}|\*|>)$"
EVENT_TYPE_RE = rf"^{TYPE_RE.pattern}$"
TYPE_PATTERN_RE = r"^(?:(?:[A-Za-z0-9_:-]+|\*)\.)*(?:[A-Za-z0-9_:-]+|\*|>)$"
# 19 digits stay below 2^64 (the server refuses larger parts as out of range)
EVENT_ID_RE = r"^[0-9]{1,19}-[0-9]{1,19}$"
USER_RE = rf"^{SEGMENT_RE}$"
# A subset of what the sink validators accept: DNS names only (a literal address or
# localhost may be refused as a private target, an email to a special-use name such
# as .test is), without "--" (IDNA rules)
_LABEL = r"[A-Za-z0-9]{1,20}(?:-[A-Za-z0-9]{1,20}){0,2}"
_HOST = rf"(?:{_LABEL}\.){{1,4}}[A-Za-z]{{2,63}}"
URL_RE = rf"^https?://{_HOST}(?::[1-9][0-9]{{0,3}})?(?:[/?][!-\"$-~]*)?$"
EMAIL_RE = rf"^[A-Za-z0-9_+-]{{1,32}}(?:\.[A-Za-z0-9_+-]{{1,15}}){{0,2}}@{_HOST}$"


def string(pattern: str, max_length: int, **extra: Any) -> Schema:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": pattern, **extra}


CHANNEL = string(
    CHANNEL_RE,
    MAX_LENGTH,
    description="1-16 dot-separated segments of [A-Za-z0-9_@:-] (1-64 each)",
    example="orders.eu",
)
PATTERN = string(
    PATTERN_RE,
    MAX_LENGTH,
    description="a channel whose segments may be `*` (one segment) or, last, `>` (one or more)",
    example="orders.*",
)
EVENT_TYPE = string(EVENT_TYPE_RE, 128, example="order.created")
TYPE_PATTERN = string(
    TYPE_PATTERN_RE, 128, description="dot segments of [A-Za-z0-9_:-], `*` or a final `>`"
)
TYPE_PATTERNS: Schema = {
    "type": ["array", "null"],
    "maxItems": MAX_TYPES,
    "items": TYPE_PATTERN,
    "description": "event types to deliver (none or null: all)",
    "example": ["order.*"],
}
EVENT_ID = string(EVENT_ID_RE, 64, description="an event id the server gave out")
USER = string(USER_RE, MAX_SEGMENT_LENGTH, description="admin only: act for this user")
JSON_VALUE_REF = "#/components/schemas/JsonValue"
JSON_VALUE: Schema = {
    "description": "any JSON value; integers within -2^63..2^64-1 (stored exactly)",
    "if": {"type": "integer"},
    "then": {"minimum": -(2**63), "maximum": 2**64 - 1},
    "items": {"$ref": JSON_VALUE_REF},
    "additionalProperties": {"$ref": JSON_VALUE_REF},
}
"""A component (api.routes.docs registers it): it refers to itself."""
ANY_JSON: Schema = {"$ref": JSON_VALUE_REF}
ORIGIN: Schema = {"type": ["string", "null"], "maxLength": MAX_ORIGIN}
URL = string(URL_RE, MAX_URL, format="uri", example="https://example.com/hooks/notify")
EMAIL = string(EMAIL_RE, 254, format="email", example="a@example.com")
TEMPLATE: Schema = {"type": "string", "minLength": 1, "description": "Jinja2; sees `event`"}

EVENT: Schema = {
    "type": "object",
    "required": ["channel", "type", "data"],
    "additionalProperties": False,
    "properties": {"channel": CHANNEL, "type": EVENT_TYPE, "data": ANY_JSON, "origin": ORIGIN},
}

ENVELOPE: Schema = {
    "type": "object",
    "required": ["id", "channel", "type", "data", "time"],
    "properties": {
        "id": {"type": "string"},
        "channel": {"type": "string"},
        "type": {"type": "string"},
        "data": ANY_JSON,
        "time": {"type": "string", "description": "RFC 3339, UTC, milliseconds"},
        "origin": {"type": "string"},
        "ce": {"type": "object", "description": "a CloudEvent's other attributes"},
    },
}


def sink(kind: str, required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["kind", *required],
        "additionalProperties": False,
        "properties": {"kind": {"const": kind}, **properties},
    }


_PLAIN = [f for f in FORMATS if f not in CHAT and f != "template"]
_WEBHOOK: Schema = {"url": URL, "signature": {"enum": ["v1", "v1a"], "description": "v1a: Ed25519"}}
SINK: Schema = {
    "oneOf": [
        sink("web"),
        sink(
            "email",
            ("to",),
            to=EMAIL,
            digest_seconds={"type": "integer", "minimum": 0, "maximum": MAX_DIGEST_SECONDS},
            template={
                "type": ["object", "null"],
                "minProperties": 1,
                "additionalProperties": False,
                "properties": {part: TEMPLATE for part in ("subject", "text", "html")},
            },
        ),
        # a webhook's format decides whether it takes a template: one branch each
        sink("webhook", ("url",), **_WEBHOOK, format={"enum": _PLAIN}, template={"type": "null"}),
        sink(
            "webhook",
            ("url", "format"),
            **_WEBHOOK,
            format={"enum": sorted(CHAT)},
            template={**TEMPLATE, "type": ["string", "null"]},
        ),
        sink(
            "webhook",
            ("url", "format", "template"),
            **_WEBHOOK,
            format={"const": "template"},
            template=TEMPLATE,
        ),
        sink("monitoring", ("url",), url=URL),
    ]
}

PROBLEM: Schema = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "the problem type's URI; GET it to learn more"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "field": {"type": "string", "description": "the first bad field"},
        "errors": {
            "type": "array",
            "description": "every bad field found",
            "items": {
                "type": "object",
                "required": ["field", "detail"],
                "properties": {"field": {"type": "string"}, "detail": {"type": "string"}},
            },
        },
    },
}
