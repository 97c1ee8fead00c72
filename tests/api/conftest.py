"""The gateway in-process: the ASGI app (fast path and FastAPI routes) on a real
redis-server, called through httpx's ASGI transport. No subprocess, no socket to the
gateway: fast feedback for request/response endpoints. Streams need a real server and
stay in tests/integration (httpx's ASGI transport reads a response whole)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from notify.api.app import create_app
from notify.api.fastpath import FastPaths
from notify.settings import Settings
from tests.support.redis import RedisServer

ApiFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def api_factory(redis_server: RedisServer, jwt_secret: str) -> AsyncIterator[ApiFactory]:
    """``await api_factory(token=None, **settings)``: a client of a fresh in-process
    gateway; ``settings`` override Settings fields (``max_event_bytes=100``)."""
    stack = contextlib.AsyncExitStack()

    async def make(token: str | None = None, **settings: Any) -> httpx.AsyncClient:
        fields: dict[str, Any] = {"redis_url": redis_server.url, "jwt_secret": jwt_secret}
        app = create_app(Settings(**(fields | settings)))
        await stack.enter_async_context(app.router.lifespan_context(app))
        headers = {"authorization": f"Bearer {token}"} if token else {}
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=FastPaths(app)),
            base_url="http://gateway.test",
            headers=headers,
        )
        return await stack.enter_async_context(client)

    async with stack:
        yield make
