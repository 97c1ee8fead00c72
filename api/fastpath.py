"""The hot endpoints served ahead of FastAPI's routing and middleware.

A stream lives for hours and every write it makes would otherwise pass back through
each middleware layer, and its request would keep FastAPI's whole call stack alive;
measured, that was a third of the memory of an idle stream and a large share of the
cost of each write. Publishing is the other hot path: FastAPI's routing alone caps a
core at a few thousand requests a second (bench/RESULTS.md). The FastAPI routes stay,
for the OpenAPI document and for anything this layer passes on; both call the same
handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from api.deps import authenticate, gateway_of
from api.problems import from_error, problem
from api.routes.publish import publish_many, publish_one
from api.routes.stream import prepare
from api.state import Gateway
from notify.auth import Principal
from notify.errors import NotifyError, StoreUnavailable
from notify.redislog import TRANSIENT

Handler = Callable[[Gateway, Principal, Request], Awaitable[Response]]
log = logging.getLogger("notify.api")


async def stream(gw: Gateway, principal: Principal, request: Request) -> Response:
    query = request.query_params
    return await prepare(
        gw,
        principal,
        query.getlist("channel"),
        query.get("last_event_id"),
        query.get("origin"),
        request.headers.get("last-event-id"),
    )


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/v1/stream"): stream,
    ("POST", "/v1/events"): publish_one,
    ("POST", "/v1/events/batch"): publish_many,
}


class FastPaths:
    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = ROUTES.get((scope.get("method", ""), scope.get("path", "")))
        if handler is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        request = Request(scope, receive)
        gw = gateway_of(request)
        send = with_cors(send, request.headers.get("origin"), gw.settings.cors_origin_list)
        try:
            response = await handler(gw, await authenticate(request), request)
        except NotifyError as exc:
            response = from_error(exc)
        except TRANSIENT:
            response = from_error(StoreUnavailable("event store unavailable"))
        except ClientDisconnect:
            return
        except Exception as exc:
            log.exception("unhandled error", exc_info=exc)
            response = problem(500, "internal", "Internal error", "an unexpected error occurred")
        await response(scope, receive, send)


def with_cors(send: Send, origin: str | None, allowed: list[str]) -> Send:
    """Adds what CORSMiddleware would to a simple cross-origin GET (EventSource)."""
    if origin is None or not allowed or (origin not in allowed and "*" not in allowed):
        return send

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            headers += [
                (b"access-control-allow-origin", origin.encode()),
                (b"access-control-allow-credentials", b"true"),
                (b"vary", b"Origin"),
            ]
            message = {**message, "headers": headers}
        await send(message)

    return sender
