"""GET /v1/events: retained history, oldest first."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from starlette.responses import Response

from notify import shards
from notify.api import schemas
from notify.api.deps import Auth, GatewayDep
from notify.channels import validate_pattern
from notify.errors import InvalidInput
from notify.events import with_id

router = APIRouter(tags=["history"])


PAGE: dict[str, Any] = {
    "type": "object",
    "required": ["events", "next"],
    "properties": {
        "events": {"type": "array", "items": schemas.ENVELOPE},
        "next": {"type": ["string", "null"], "description": "`after` for the next page"},
    },
}


@router.get(
    "/v1/events",
    responses={200: {"description": "a page", "content": {"application/json": {"schema": PAGE}}}},
)
async def history(
    principal: Auth,
    gw: GatewayDep,
    channel: Annotated[
        str,
        Query(
            description="channel or pattern",
            max_length=255,
            json_schema_extra={"minLength": 1, "pattern": schemas.PATTERN_RE},
        ),
    ],
    after: Annotated[
        str | None,
        Query(max_length=shards.MAX_CURSOR, json_schema_extra={"pattern": schemas.CURSOR_RE}),
    ] = None,
    limit: Annotated[int, Query(json_schema_extra={"minimum": 1, "maximum": 1000})] = 100,
) -> Response:
    """Events on `channel` (a channel or pattern) after `after`: an event id, or the
    `next` of the page before (with a sharded store, a cursor covering every shard)."""
    pattern = validate_pattern(channel)
    principal.require_read(pattern)
    if after is not None:
        after = shards.check(after, "after")
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000", field="limit")
    page = await gw.log.history([pattern], after, limit)
    events = b",".join(with_id(e.id, e.body) for e in page.entries)
    body = b'{"events":[' + events + b'],"next":' + orjson.dumps(page.next) + b"}"
    return Response(body, media_type="application/json")
