"""POST /v1/events and /v1/events/batch."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Header, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive

from notify import cloudevents, keys, tracing
from notify.api import metrics, schemas
from notify.api.deps import Auth, GatewayDep
from notify.api.state import Gateway
from notify.auth import Principal
from notify.errors import Findings, Forbidden, InvalidEvent, InvalidInput, TooLarge
from notify.events import EventDraft, draft, loads, now_rfc3339, valid_traceparent
from notify.tracing import Publish

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
TRACEPARENT = Header(
    None,
    alias="traceparent",
    description="W3C Trace Context: stored with the events (their `traceparent`) and carried"
    " on to webhooks; a malformed one is ignored, as the specification asks",
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
    """A FastAPI route's request body as JSON (see :func:`read_body`; such a route
    declares no body parameter, so FastAPI has read none of it)."""
    return loads(await body_of(request, limit), "body")


async def body_of(request: Request, limit: int) -> bytes:
    """A FastAPI route's request body (see :func:`read_body`)."""
    return await read_body(request.receive, limit, request.headers.get("content-length"))


async def read_body(receive: Receive, limit: int, declared: str | None) -> bytes:
    """The whole request body, straight from ``receive``: the one reader of the fast
    path and the FastAPI routes. More than ``limit`` bytes is refused (413), before
    any is read when the ``declared`` Content-Length says so."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"body is over the limit of {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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
    gw: Gateway,
    subject: str,
    drafts: list[EventDraft],
    key: str | None,
    span: Publish | None = None,
) -> list[tuple[str, str]]:
    """Append the events to the log (deduplicated by ``key``, if given). The write is
    the ``notify.append`` child of the publish ``span`` (else of the current span, when
    a publish span) if recorded, and what was stored labels it (the first event, for a
    batch)."""
    await gw.limiter.take_publish(subject, len(drafts))
    traced = tracing.appending(span) if tracing.ENABLED else None
    if key:
        pairs = await gw.log.append(drafts, idempotency_key=keys.idempotency(subject, key))
    else:
        pairs = await gw.batcher.append(drafts)
    if traced is not None:  # traced.appended(pairs), inline: every publish's
        traced.append_end, traced.first, traced.count = time.time_ns(), pairs[0], len(pairs)
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
    traceparent: str | None = TRACEPARENT,
) -> Response:
    """Publish one event; `202` means it is stored in Redis."""
    return await publish_one(gw, principal, request)


async def publish_one(gw: Gateway, principal: Principal, request: Request) -> Response:
    key = idempotency(request.headers.get("idempotency-key"))
    trace = request.headers.get("traceparent")
    if (ce := cloudevents_of(request)) is not None:
        body = await body_of(request, one_limit(gw))
        accepted = await accept_cloudevents(gw, principal, *ce, body, key, trace)
        return Response(accepted, 202, media_type="application/json")
    raw = await read_json(request, one_limit(gw))
    accepted = await accept_one(gw, principal, raw, key, trace)
    return Response(accepted, 202, media_type="application/json")


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
    traceparent: str | None = None,
) -> list[tuple[str, str]]:
    """Store validated CloudEvents, all or nothing, if the token may publish to each
    one's channel (a refusal names ``events[i].channel`` in a batch); without ``key``,
    their ``source`` + ``id`` deduplicate.

    An event stores the request's ``traceparent``, else its own ``traceparent``
    attribute; while tracing, the publish span (child of the request's, else of the
    first event's attribute) stands for them all."""
    given = valid_traceparent(traceparent)
    own = (valid_traceparent(e.ce.get("traceparent")) for e in incoming)
    with tracing.publish(given or next(filter(None, own), None)) as span:
        drafts, own_key = cloudevents.prepare(
            incoming,
            max_bytes=gw.settings.max_event_bytes,
            origin=origin,
            traceparent=span.context if span is not None else given,
        )
        for i, d in enumerate(drafts):
            if not principal.can_publish(d.channel):
                field = f"events[{i}].channel" if batch else "channel"
                raise Forbidden(f"token may not publish to {d.channel!r}", field=field)
        return await store(gw, principal.sub, drafts, key or own_key, span)


async def accept_cloudevents(
    gw: Gateway,
    principal: Principal,
    kind: str,
    headers: dict[str, str],
    content_type: str | None,
    query_string: bytes,
    body: bytes,
    key: str | None,
    traceparent: str | None = None,
) -> bytes:
    """Validate and store CloudEvents (any mode, either endpoint), all or nothing; the
    answer is shaped by the mode: ``{"id","channel"}`` for one, ``{"ids"}`` for a batch.
    Without an Idempotency-Key, ``source`` + ``id`` make one."""
    incoming = cloudevents.parse(kind, headers, content_type, body, query_string, MAX_BATCH)
    pairs = await store_cloudevents(
        gw, principal, incoming, key, batch=kind == "batch", traceparent=traceparent
    )
    if kind == "batch":
        return orjson.dumps({"ids": [i for i, _ in pairs]})
    return orjson.dumps({"id": pairs[0][0], "channel": pairs[0][1]})


async def accept_one(
    gw: Gateway, principal: Principal, raw: Any, key: str | None, traceparent: str | None = None
) -> bytes:
    """Validate and store one event; the body of the ``202``. ``traceparent`` is the
    request's header, unchecked (a malformed one is ignored)."""
    given = valid_traceparent(traceparent)
    with tracing.publish(given) as span:
        stamped = span.context if span is not None else given
        d = draft(raw, max_bytes=gw.settings.max_event_bytes, parsed=True, traceparent=stamped)
        principal.require_publish(d.channel)
        pairs = await store(gw, principal.sub, [d], key, span)
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
    traceparent: str | None = TRACEPARENT,
) -> Response:
    """Publish 1-1000 events at once, all or nothing."""
    return await publish_many(gw, principal, request)


async def publish_many(gw: Gateway, principal: Principal, request: Request) -> Response:
    key = idempotency(request.headers.get("idempotency-key"))
    trace = request.headers.get("traceparent")
    if (ce := cloudevents_of(request)) is not None:
        body = await body_of(request, batch_limit(gw))
        accepted = await accept_cloudevents(gw, principal, *ce, body, key, trace)
        return Response(accepted, 202, media_type="application/json")
    raw = await read_json(request, batch_limit(gw))
    accepted = await accept_many(gw, principal, raw, key, trace)
    return Response(accepted, 202, media_type="application/json")


async def accept_many(
    gw: Gateway, principal: Principal, raw: Any, key: str | None, traceparent: str | None = None
) -> bytes:
    """Validate and store a batch, all or nothing; the body of the ``202`` (every event
    stores the one ``traceparent``, as for :func:`accept_one`)."""
    given = valid_traceparent(traceparent)
    with tracing.publish(given) as span:
        stamped = span.context if span is not None else given
        return await accepted_many(gw, principal, raw, key, stamped, span)


async def accepted_many(
    gw: Gateway,
    principal: Principal,
    raw: Any,
    key: str | None,
    traceparent: str | None,
    span: Publish | None,
) -> bytes:
    if not isinstance(raw, dict) or set(raw) != {"events"}:
        raise InvalidEvent("body must be an object with exactly the field 'events'", field="events")
    events = raw["events"]
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_BATCH:
        raise InvalidEvent(f"events must be a list of 1-{MAX_BATCH} events", field="events")
    limit = gw.settings.max_event_bytes
    at = now_rfc3339()  # one clock reading for the whole batch
    found = Findings()  # every bad field of every event, not just the first
    checked = [
        found.attempt(
            draft, e, max_bytes=limit, time=at, index=i, parsed=True, traceparent=traceparent
        )
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
    pairs = await store(gw, principal.sub, drafts, key, span)
    return orjson.dumps({"ids": [i for i, _ in pairs]})
