"""Health, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import JSONResponse, PlainTextResponse, Response

from notify import keys
from notify.api import metrics
from notify.api.deps import GatewayDep
from notify.api.problems import problem
from notify.errors import NotReady, StoreUnavailable
from notify.redis.eventlog import translated
from notify.redis.pending import read_backlog

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        200: {
            "description": "ready",
            "content": {"application/json": {"schema": {"const": {"status": "ready"}}}},
        }
    },
)
async def readyz(gw: GatewayDep) -> Response:
    """Redis answers and the event reader is running."""
    problems: list[str] = []
    try:
        with translated():
            # the key every role reads at start: on a cluster, its node (PING would
            # ask any node); the shards' nodes are the reader's to judge
            await gw.redis.exists(keys.SHARDS)
    except Exception:
        problems.append("redis unreachable")
    if not gw.hub.running:
        problems.append("event reader not running")
    if problems:
        # an error like any other (problem+json), with the list as an extension member
        return problem(
            NotReady,
            "; ".join(problems),
            headers={"Retry-After": "1"},
            extra={"problems": problems},
        )
    return JSONResponse({"status": "ready"})


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus(gw: GatewayDep) -> Response:
    """Prometheus text: this gateway's own metrics, then what all workers keep in Redis
    (deliveries, the dispatch backlog and the retry set; the same on every gateway, so
    aggregate them with max; left out while Redis is unreachable)."""
    metrics.READER_UP.set(1 if gw.hub.running else 0)
    body = metrics.exposition()
    try:
        with translated():
            fields = await gw.redis.hgetall(keys.DELIVERY_METRICS)
        body += metrics.delivery_text(fields) + metrics.backlog_text(
            await read_backlog(gw.redis, shards=gw.settings.shards)
        )
    except StoreUnavailable:
        pass
    return Response(body, media_type=CONTENT_TYPE_LATEST)
