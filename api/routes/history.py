"""GET /v1/events: retained history, oldest first."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from starlette.responses import Response

from notify.api.deps import Auth, GatewayDep
from notify.channels import validate_pattern
from notify.errors import InvalidInput
from notify.events import parse_id, with_id

router = APIRouter(tags=["history"])


@router.get("/v1/events")
async def history(
    principal: Auth,
    gw: GatewayDep,
    channel: Annotated[str, Query(description="channel or pattern", max_length=255)],
    after: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query()] = 100,
) -> Response:
    """Events on `channel` (a channel or pattern) after the id `after`."""
    pattern = validate_pattern(channel)
    principal.require_read(pattern)
    if after is not None:
        parse_id(after, field="after")
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000", field="limit")
    page = await gw.log.history([pattern], after, limit)
    events = b",".join(with_id(e.id, e.body) for e in page.entries)
    body = b'{"events":[' + events + b'],"next":' + orjson.dumps(page.next) + b"}"
    return Response(body, media_type="application/json")
