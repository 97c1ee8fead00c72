"""The FastAPI gateway: app factory and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from notify import tracing
from notify.api import cors, problems
from notify.api.batcher import AppendBatcher
from notify.api.hub import Hub, stop
from notify.api.limits import FairShare, RateLimiter
from notify.api.routes import (
    catalogue,
    deliveries,
    docs,
    feed,
    history,
    ops,
    pages,
    preview,
    publish,
    stream,
    subscriptions,
    topics,
    unsubscribe,
    ws,
)
from notify.api.state import Gateway
from notify.auth import Verifier
from notify.errors import StoreUnavailable
from notify.redis import limits
from notify.redis.client import Client, async_client
from notify.redis.eventlog import Retention, open_log
from notify.settings import Settings


def build_gateway(settings: Settings) -> Gateway:
    timeout = settings.redis_timeout_seconds
    client = async_client(settings.redis_url, timeout=timeout, max_connections=256)

    # the hub's own connection per shard, for its blocking XREAD (see Hub: 5 s blocks)
    def reader() -> Client:
        return async_client(
            settings.redis_url, timeout=timeout, block_seconds=5.0, max_connections=2
        )

    log = open_log(
        client,
        Retention(
            seconds=settings.history_seconds,
            max_events=settings.history_max_events,
            channel_max_events=settings.channel_history_max_events,
        ),
        settings.shards,
        reader,
        min_replicas=settings.publish_min_replicas,
        # WAIT answers before the command deadline ends the connection
        wait_ms=max(1, int(timeout * 500)),
    )
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    return Gateway(
        settings=settings,
        redis=client,
        log=log,
        hub=Hub(
            log,
            keepalive_seconds=settings.keepalive_seconds,
            send_timeout_seconds=settings.send_timeout_seconds,
        ),
        verifier=Verifier(secret=secret, public_key=settings.jwt_public_key),
        batcher=AppendBatcher(log),
        fair=FairShare(settings.api_concurrency_per_client),
        limiter=RateLimiter(
            client,
            settings.publish_rate,
            max_streams=settings.max_streams_per_subject,
            auth_failures_per_minute=settings.auth_failures_per_minute,
            stream_lease_seconds=settings.stream_lease_seconds,
        ),
    )


def create_app(settings: Settings) -> FastAPI:
    settings.require_secret()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tracing.setup("gateway")  # each process of a --workers gateway: its own exporter
        gw = build_gateway(settings)
        app.state.gateway = gw
        reader = asyncio.create_task(gw.hub.run(), name="notify-reader")
        keeper = asyncio.create_task(
            gw.hub.housekeep(
                renew=gw.limiter.renew_streams, renew_every=settings.stream_renewal_seconds
            ),
            name="notify-housekeeping",
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await gw.hub.started.wait()
        with contextlib.suppress(StoreUnavailable, TimeoutError):  # Redis may be down yet
            async with asyncio.timeout(2.0):
                await limits.advertise(gw.redis, settings.model_dump(include=set(limits.FIELDS)))
        try:
            yield
        finally:
            gw.hub.close_all("shutdown")
            await stop(keeper)
            await stop(reader)
            await gw.log.aclose()
            await gw.redis.aclose()
            tracing.shutdown()

    app = FastAPI(
        title="notify",
        version="1.0",
        summary="Event notification fan-out: SSE, WebSocket, email, webhooks, monitoring",
        lifespan=lifespan,
        docs_url=None,  # served offline by notify.api.routes.docs
        redoc_url=None,
    )
    problems.install(app, settings.problem_base)
    if cors.enabled(settings):
        app.add_middleware(
            cors.Cors, origins=settings.cors_origin_list, loopback=settings.cors_allow_loopback
        )
    # preview before subscriptions: /v1/subscriptions/preview is not a subscription id
    api = (publish, history, stream, ws, ops, preview, subscriptions, deliveries, feed)
    for module in (*api, unsubscribe, catalogue, topics, pages, docs):
        app.include_router(module.router)
    docs.with_bearer(app)
    return app
