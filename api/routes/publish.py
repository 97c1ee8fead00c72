"""POST /v1/events and /v1/events/batch."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Header, Request
from starlette.responses import Response

from notify import cloudevents, keys
from notify.api import metrics, schemas
from notify.api.deps import Auth, GatewayDep
from notify.api.state import Gateway
from notify.auth import Principal
from notify.errors import Findings, Forbidden, InvalidEvent, InvalidInput, TooLarge
from notify.events import Draft, draft, loads, now_rfc3339

router = APIRouter(tags=["publish"])
MAX_BATCH = 1000
MAX_IDEMPOTENCY_KEY = 255

PRINTABLE_RE = f"^[ -~\u00a1-\u00ac\u00ae-\u00ff]{{1,{MAX_IDEMPOTENCY_KEY}}}$"
"""What ``str.isprintable`` passes of the Latin-1 an HTTP header carries."""
IDEMPOTENCY_KEY = Header(
    None,
    alias="Idempotency-Key",
    description="a repeat by the same token subject within 24 h answers as the first",
    json_schema_extra={"minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY, "pattern": PRINTABLE_RE},
)
ATTRIBUTE: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": cloudevents.MAX_ATTRIBUTE,
}
CLOUDEVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0, structured mode (binary mode: ce-* headers); the channel"
    " is the channel attribute or ?channel=, source + id are the idempotency key, and the"
    " other attributes are kept on the envelope under ce",
    "required": ["specversion", "id", "source", "type", "channel"],
    "properties": {
        "specversion": {"const": cloudevents.SPECVERSION},
        "id": ATTRIBUTE,
        "source": ATTRIBUTE,
        "type": schemas.EVENT_TYPE,
        "channel": schemas.CHANNEL,
        "time": ATTRIBUTE,
        "subject": ATTRIBUTE,
        "dataschema": ATTRIBUTE,
        "data": schemas.ANY_JSON,
        "data_base64": {"type": "string", "pattern": "^(?:[A-Za-z0-9+/]{4})*$"},
    },
    "not": {"required": ["data", "data_base64"]},
    "propertyNames": {"pattern": "^(?:[a-z0-9]{1,64}|data_base64)$"},
    "additionalProperties": {
        "description": "an extension attribute",
        "anyOf": [
            {"type": "string", "maxLength": cloudevents.MAX_ATTRIBUTE},
            {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
            {"type": "boolean"},
        ],
    },
}
CLOUDEVENTS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "maxItems": MAX_BATCH,
    "items": CLOUDEVENT_SCHEMA,
}
BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["events"],
    "additionalProperties": False,
    "properties": {
        "events": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": schemas.EVENT}
    },
}
ACCEPTED: dict[str, Any] = {
    "type": "object",
    "required": ["id", "channel"],
    "properties": {"id": {"type": "string"}, "channel": {"type": "string"}},
}
ACCEPTED_BATCH: dict[str, Any] = {
    "type": "object",
    "required": ["ids"],
    "properties": {"ids": {"type": "array", "items": {"type": "string"}}},
}


def stored(*bodies: dict[str, Any]) -> dict[int | str, Any]:
    """The 202 of a publish: ``{"id","channel"}`` for one event, ``{"ids"}`` for many."""
    schema = bodies[0] if len(bodies) == 1 else {"oneOf": list(bodies)}
    return {202: {"description": "stored", "content": {"application/json": {"schema": schema}}}}


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON, refusing more than ``limit`` bytes before reading it."""
    return loads(await read_body(request, limit), "body")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes before reading it."""
    check_declared(request.headers.get("content-length"), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def check_declared(declared: str | None, limit: int) -> None:
    """Refuse a body whose Content-Length is over ``limit`` before reading any of it."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body is over the limit of {limit} bytes")


def one_limit(gw: Gateway) -> int:
    return gw.settings.max_event_bytes + 1024


def batch_limit(gw: Gateway) -> int:
    return gw.settings.max_batch_bytes


def idempotency(key: str | None) -> str | None:
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise InvalidInput(
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters",
            field="Idempotency-Key",
        )
    return key


async def store(
    gw: Gateway, subject: str, drafts: list[Draft], key: str | None
) -> list[tuple[str, str]]:
    await gw.limiter.take_publish(subject, len(drafts))
    if key:
        pairs = await gw.log.append(drafts, idempotency_key=keys.idempotency(subject, key))
    else:
        pairs = await gw.batcher.append(drafts)
    metrics.EVENTS_PUBLISHED.inc(len(drafts))
    return pairs


@router.post(
    "/v1/events",
    status_code=202,
    responses=stored(ACCEPTED, ACCEPTED_BATCH),  # a CloudEvents batch answers as a batch
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schemas.EVENT},
                "application/cloudevents+json": {"schema": CLOUDEVENT_SCHEMA},
                "application/cloudevents-batch+json": {"schema": CLOUDEVENTS_SCHEMA},
            },
        }
    },
)
async def publish(
    request: Request,
    principal: Auth,
    gw: GatewayDep,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Response:
    """Publish one event; `202` means it is stored in Redis."""
    return await publish_one(gw, principal, request)


async def publish_one(gw: Gateway, principal: Principal, request: Request) -> Response:
    key = idempotency(request.headers.get("idempotency-key"))
    if (ce := cloudevents_of(request)) is not None:
        body = await read_body(request, one_limit(gw))
        accepted = await accept_cloudevents(gw, principal, *ce, body, key)
        return Response(accepted, 202, media_type="application/json")
    raw = await read_json(request, one_limit(gw))
    return Response(await accept_one(gw, principal, raw, key), 202, media_type="application/json")


def cloudevents_of(request: Request) -> CloudEventsRequest | None:
    """The CloudEvents parts of a request, or None for notify's own JSON."""
    headers = {k: v for k, v in request.headers.items() if k.startswith("ce-")}
    content_type = request.headers.get("content-type")
    kind = cloudevents.mode(content_type, "ce-specversion" in headers)
    if kind is None:
        return None
    return kind, headers, content_type, request.scope.get("query_string", b"")


CloudEventsRequest = tuple[str, dict[str, str], "str | None", bytes]


async def store_cloudevents(
    gw: Gateway,
    principal: Principal,
    incoming: list[cloudevents.Incoming],
    key: str | None,
    *,
    batch: bool = False,
    origin: str | None = None,
) -> list[tuple[str, str]]:
    """Store validated CloudEvents, all or nothing, if the token may publish to each
    one's channel (a refusal names ``events[i].channel`` in a batch); without ``key``,
    their ``source`` + ``id`` deduplicate."""
    drafts, own_key = cloudevents.prepare(
        incoming, max_bytes=gw.settings.max_event_bytes, origin=origin
    )
    for i, d in enumerate(drafts):
        if not principal.can_publish(d.channel):
            field = f"events[{i}].channel" if batch else "channel"
            raise Forbidden(f"token may not publish to {d.channel!r}", field=field)
    return await store(gw, principal.sub, drafts, key or own_key)


async def accept_cloudevents(
    gw: Gateway,
    principal: Principal,
    kind: str,
    headers: dict[str, str],
    content_type: str | None,
    query_string: bytes,
    body: bytes,
    key: str | None,
) -> bytes:
    """Validate and store CloudEvents (any mode, either endpoint), all or nothing; the
    answer is shaped by the mode: ``{"id","channel"}`` for one, ``{"ids"}`` for a batch.
    Without an Idempotency-Key, ``source`` + ``id`` make one."""
    incoming = cloudevents.parse(kind, headers, content_type, body, query_string, MAX_BATCH)
    pairs = await store_cloudevents(gw, principal, incoming, key, batch=kind == "batch")
    if kind == "batch":
        return orjson.dumps({"ids": [i for i, _ in pairs]})
    return orjson.dumps({"id": pairs[0][0], "channel": pairs[0][1]})


async def accept_one(gw: Gateway, principal: Principal, raw: Any, key: str | None) -> bytes:
    """Validate and store one event; the body of the ``202``."""
    d = draft(raw, max_bytes=gw.settings.max_event_bytes, parsed=True)
    principal.require_publish(d.channel)
    pairs = await store(gw, principal.sub, [d], key)
    event_id, channel = pairs[0]
    return orjson.dumps({"id": event_id, "channel": channel})


@router.post(
    "/v1/events/batch",
    status_code=202,
    responses=stored(ACCEPTED_BATCH),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": BATCH_SCHEMA},
                "application/cloudevents-batch+json": {"schema": CLOUDEVENTS_SCHEMA},
            },
        }
    },
)
async def publish_batch(
    request: Request,
    principal: Auth,
    gw: GatewayDep,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Response:
    """Publish 1-1000 events at once, all or nothing."""
    return await publish_many(gw, principal, request)


async def publish_many(gw: Gateway, principal: Principal, request: Request) -> Response:
    key = idempotency(request.headers.get("idempotency-key"))
    if (ce := cloudevents_of(request)) is not None:
        body = await read_body(request, batch_limit(gw))
        accepted = await accept_cloudevents(gw, principal, *ce, body, key)
        return Response(accepted, 202, media_type="application/json")
    raw = await read_json(request, batch_limit(gw))
    return Response(await accept_many(gw, principal, raw, key), 202, media_type="application/json")


async def accept_many(gw: Gateway, principal: Principal, raw: Any, key: str | None) -> bytes:
    """Validate and store a batch, all or nothing; the body of the ``202``."""
    if not isinstance(raw, dict) or set(raw) != {"events"}:
        raise InvalidEvent("body must be an object with exactly the field 'events'", field="events")
    events = raw["events"]
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_BATCH:
        raise InvalidEvent(f"events must be a list of 1-{MAX_BATCH} events", field="events")
    limit = gw.settings.max_event_bytes
    at = now_rfc3339()  # one clock reading for the whole batch
    found = Findings()  # every bad field of every event, not just the first
    checked = [
        found.attempt(draft, e, max_bytes=limit, time=at, index=i, parsed=True)
        for i, e in enumerate(events)
    ]
    found.raise_any()
    drafts = [d for d in checked if d is not None]
    allowed: set[str] = set()  # a batch mostly repeats a few channels
    for i, d in enumerate(drafts):
        if d.channel not in allowed:
            if not principal.can_publish(d.channel):
                field = f"events[{i}].channel"
                raise Forbidden(f"token may not publish to {d.channel!r}", field=field)
            allowed.add(d.channel)
    pairs = await store(gw, principal.sub, drafts, key)
    return orjson.dumps({"ids": [i for i, _ in pairs]})
