"""The naive peer: FastAPI + sse-starlette + encode/broadcaster on Redis pub/sub.

This is the stack a FastAPI user would write first; the benchmark runs it beside
notify with the same load. It lives in its own venv (bench/.peer-venv, redis-py 7.4:
broadcaster 0.3.1 delivers nothing with redis-py 8). Run it with

    PEER_REDIS_URL=redis://127.0.0.1:6379/0 uvicorn bench.peer_app:app --loop uvloop
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from broadcaster import Broadcast
from fastapi import FastAPI
from sse_starlette.sse import EventSourceResponse

broadcast = Broadcast(os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"))


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    await broadcast.connect()
    try:
        yield
    finally:
        await broadcast.disconnect()


app = FastAPI(lifespan=lifespan)


@app.get("/stream")
async def stream(channel: str) -> EventSourceResponse:
    async def events() -> AsyncIterator[dict[str, str]]:
        async with broadcast.subscribe(channel) as subscriber:
            async for event in subscriber:  # type: ignore[union-attr]
                if event is not None:
                    yield {"data": event.message}

    return EventSourceResponse(events())


@app.get("/healthz")
async def healthz() -> dict[str, bool]:
    return {"ok": True}
