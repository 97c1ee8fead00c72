"""GET /v1/stream: Server-Sent Events."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Header, Query
from starlette.responses import Response

from notify import shards
from notify.api.deps import Auth, GatewayDep
from notify.api.hub import Subscriber
from notify.api.state import Gateway
from notify.api.streams import EventStream, hub_started
from notify.auth import Principal
from notify.channels import validate_pattern
from notify.errors import InvalidInput
from notify.events import MAX_ORIGIN

router = APIRouter(tags=["stream"])
MAX_PATTERNS = 100


def cursor_of(header: str | None, query: str | None) -> str | None:
    value = header if header else query
    if value is None or value == "":
        return None
    return shards.check(value, "Last-Event-ID" if header else "last_event_id")


async def open_stream(
    gw: Gateway,
    principal: Principal,
    patterns: list[str],
    cursor: str | None,
    sub: Subscriber,
) -> EventStream:
    # checked before the 200 goes out, so a dead store still answers 503
    if cursor:
        cursor = await gw.log.normalize(cursor)
    gap = await gw.log.position(patterns, cursor) if cursor else None
    if cursor is None:
        await hub_started(gw)  # the stream's position is the hub's
    sub.lease = (principal.sub, secrets.token_hex(8))
    await gw.limiter.open_stream(*sub.lease)
    return EventStream(gw, principal, patterns, cursor, gap, sub)


@router.get(
    "/v1/stream",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}, "description": "event stream"}},
)
async def stream(
    principal: Auth,
    gw: GatewayDep,
    channel: Annotated[list[str], Query(description="channels or patterns")],
    last_event_id: Annotated[str | None, Query(max_length=shards.MAX_CURSOR)] = None,
    origin: Annotated[str | None, Query(max_length=MAX_ORIGIN)] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=shards.MAX_CURSOR)
    ] = None,
) -> EventStream:
    """Live events on the given channels/patterns, resumable by `Last-Event-ID`.

    (Served by `api.fastpath` ahead of FastAPI's routing; this route documents it and
    serves any request the fast path passes on.)"""
    return await prepare(gw, principal, channel, last_event_id, origin, last_event_id_header)


async def prepare(
    gw: Gateway,
    principal: Principal,
    channel: list[str],
    last_event_id: str | None,
    origin: str | None,
    last_event_id_header: str | None,
) -> EventStream:
    if origin is not None and len(origin) > MAX_ORIGIN:
        raise InvalidInput(f"origin is longer than {MAX_ORIGIN} characters", field="origin")
    if not 1 <= len(channel) <= MAX_PATTERNS:
        raise InvalidInput(f"give 1-{MAX_PATTERNS} channel parameters", field="channel")
    patterns = [validate_pattern(c) for c in channel]
    for p in patterns:
        principal.require_read(p)
    cursor = cursor_of(last_event_id_header, last_event_id)
    sub = Subscriber("sse", gw.settings.max_queued, origin=origin)
    return await open_stream(gw, principal, patterns, cursor, sub)
