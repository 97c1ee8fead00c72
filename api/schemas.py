"""JSON Schemas of the OpenAPI document: the subscription bodies as their pydantic
models (notify.subscriptions) declare them, the rest one per input rule, built from the
limits of the validators that enforce them (notify.channels, notify.events).

A request the schema allows must be one the server accepts, and the reverse as far as
JSON Schema can say it: a generated client (or schemathesis) relies on both. Rules
it cannot say (SSRF targets, Jinja2 syntax, a rule across two inputs) are described
and answered 422. tests/unit/test_openapi_schemas.py checks the regular expressions
against the validators.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import models_json_schema

from notify.channels import MAX_LENGTH, MAX_SEGMENTS
from notify.events import MAX_ORIGIN, TYPE_RE
from notify.subscriptions import PATTERN_RE as PATTERN_RE  # the routes' query parameters
from notify.subscriptions import SEGMENT_RE as SEGMENT_RE
from notify.subscriptions import (
    Pattern,
    Sink,
    SubscriptionCreate,
    SubscriptionPatch,
    TypePatterns,
    string,
)

Schema = dict[str, Any]
COMPONENT = "#/components/schemas/{model}"

CHANNEL_RE = rf"^{SEGMENT_RE}(?:\.{SEGMENT_RE}){{0,{MAX_SEGMENTS - 1}}}$"
EVENT_TYPE_RE = rf"^{TYPE_RE.pattern}$"
# 19 digits stay below 2^64 (the server refuses larger parts as out of range)
EVENT_ID_RE = r"^[0-9]{1,19}-[0-9]{1,19}$"
CURSOR_RE = r"^(?:[0-9]{1,19}-[0-9]{1,19}|~[0-9a-z.-]*)$"
"""An event id, or a sharded store's cursor (notify.shards)."""


def of(annotation: Any) -> Schema:
    """The schema pydantic makes of a declared type, its models referred to as the
    document's components (:data:`COMPONENTS` holds them)."""
    schema: Schema = TypeAdapter(annotation).json_schema(ref_template=COMPONENT)
    schema.pop("$defs", None)
    return schema


CHANNEL = string(
    CHANNEL_RE,
    MAX_LENGTH,
    description="1-16 dot-separated segments of [A-Za-z0-9_@:-] (1-64 each)",
    example="orders.eu",
)
PATTERN = of(Pattern)
EVENT_TYPE = string(EVENT_TYPE_RE, 128, example="order.created")
TYPE_PATTERNS = of(TypePatterns)
EVENT_ID = string(EVENT_ID_RE, 64, description="an event id the server gave out")
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
        "traceparent": {
            "type": "string",
            "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            "description": "W3C Trace Context of the publish, when one was given or traced",
        },
    },
}

_BODIES, _DEFINED = models_json_schema(
    [(SubscriptionCreate, "validation"), (SubscriptionPatch, "validation")],
    ref_template=COMPONENT,
)
SUBSCRIPTION_CREATE: Schema = _BODIES[SubscriptionCreate, "validation"]
SUBSCRIPTION_PATCH: Schema = _BODIES[SubscriptionPatch, "validation"]
SINK = of(Sink)

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
COMPONENTS: dict[str, Schema] = {"Problem": PROBLEM, "JsonValue": JSON_VALUE, **_DEFINED["$defs"]}
"""The document's named schemas (api.routes.docs puts them in): the problem, the JSON
value that refers to itself, and the models of the subscription bodies."""
