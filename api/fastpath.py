"""The SSE stream served ahead of FastAPI's routing and middleware.

A stream lives for hours and every write it makes would otherwise pass back through
each middleware layer, and its request would keep FastAPI's whole call stack alive;
measured, that was a third of the memory of an idle stream and a large share of the
cost of each write (bench/RESULTS.md). Everything else goes to the FastAPI app.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from api.deps import gateway_of, principal_of
from api.problems import from_error
from api.routes.stream import prepare
from notify.errors import NotifyError, StoreUnavailable
from notify.redislog import TRANSIENT

STREAM_PATH = "/v1/stream"


class FastPaths:
    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == STREAM_PATH and scope["method"] == "GET":
            await self.stream(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app
        request = Request(scope, receive)
        gw = gateway_of(request)
        send = with_cors(send, request.headers.get("origin"), gw.settings.cors_origin_list)
        try:
            query = request.query_params
            response = await prepare(
                gw,
                principal_of(request),
                query.getlist("channel"),
                query.get("last_event_id"),
                query.get("origin"),
                request.headers.get("last-event-id"),
            )
        except NotifyError as exc:
            await from_error(exc)(scope, receive, send)
            return
        except TRANSIENT:
            await from_error(StoreUnavailable("event store unavailable"))(scope, receive, send)
            return
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
