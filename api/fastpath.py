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

from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from notify import cloudevents
from notify.api import metrics
from notify.api.cors import with_cors
from notify.api.deps import authenticate, authenticate_raw, gateway_of, raw_token
from notify.api.problems import from_exception
from notify.api.routes.publish import (
    accept_cloudevents,
    accept_many,
    accept_one,
    batch_limit,
    idempotency,
    one_limit,
    read_body,
)
from notify.api.routes.stream import prepare
from notify.api.routes.ws import websocket
from notify.api.state import Gateway
from notify.auth import Principal
from notify.errors import NotifyError
from notify.events import loads

Handler = Callable[[Gateway, Principal, Request], Awaitable[Response]]
Accept = Callable[[Gateway, Principal, Any, "str | None", "str | None"], Awaitable[bytes]]


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
}
PUBLISH: dict[tuple[str, str], tuple[Callable[[Gateway], int], Accept]] = {
    ("POST", "/v1/events"): (one_limit, accept_one),
    ("POST", "/v1/events/batch"): (batch_limit, accept_many),
}
WS_PATH = "/v1/ws"
TOKEN_HEADERS = frozenset((b"authorization", b"cookie"))
WANTED = TOKEN_HEADERS | {
    b"content-length",
    b"content-type",
    b"host",
    b"idempotency-key",
    b"origin",
    b"referer",
    b"ce-specversion",
    b"traceparent",
}
JSON_202 = (b"content-type", b"application/json")


class FastPaths:
    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (scope.get("method", ""), scope.get("path", ""))
        publish = PUBLISH.get(route)
        if publish is not None and scope["type"] == "http":
            await self.publish(scope, receive, send, *publish)
            return
        if scope["type"] == "websocket" and scope.get("path") == WS_PATH:
            # as for SSE: a socket lives for hours, and FastAPI's stack would live with it
            scope["app"] = self.app
            await websocket(WebSocket(scope, receive, send))
            return
        handler = ROUTES.get(route)
        if handler is None or scope["type"] != "http":
            gw: Gateway | None = getattr(self.app.state, "gateway", None)
            if scope["type"] == "http" and gw is not None:
                send = timed(send, scope)
                async with gw.fair.turn(client_key(gw, scope)) as release:  # see FairShare
                    await self.app(scope, receive, releasing(send, release))
            else:
                await self.app(scope, receive, send)
            return
        started = perf_counter()
        scope["app"] = self.app
        request = Request(scope, receive)
        gw = gateway_of(request)
        send = with_cors(send, request.headers.get("origin"), gw.settings)
        response = await answer(authenticated(handler, gw, request))
        # counted as it starts: a stream's answer lasts for hours (and no wrapper of
        # `send` stays alive with it: bench c)
        metrics.answered(route[1], route[0], status_of(response), perf_counter() - started)
        await response(scope, receive, send)

    async def publish(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        limit_of: Callable[[Gateway], int],
        accept: Accept,
    ) -> None:
        """Publishing from the bare ASGI request: no Request object, the headers read
        once, the body read straight from ``receive`` (same checks and errors as the
        FastAPI routes, which call the same ``accept_*``)."""
        headers = pick_headers(scope, WANTED)
        gw: Gateway = self.app.state.gateway
        send = with_cors(send, headers.get(b"origin"), gw.settings)
        client = scope.get("client")

        async def work() -> ASGIApp:
            principal = await authenticate_raw(
                gw,
                client[0] if client else None,
                headers.get(b"authorization"),
                headers.get(b"cookie"),
                scope.get("query_string", b""),
                csrf=(
                    scope["method"],
                    scope.get("scheme", "http"),
                    headers.get(b"host"),
                    headers.get(b"origin"),
                    headers.get(b"referer"),
                    headers.get(b"content-type"),
                ),
            )
            key = idempotency(headers.get(b"idempotency-key"))
            trace = headers.get(b"traceparent")
            body = await read_body(receive, limit_of(gw), headers.get(b"content-length"))
            content_type = headers.get(b"content-type")
            kind = cloudevents.mode(content_type, b"ce-specversion" in headers)
            if kind is not None:  # the same parser as the documented routes
                ce = {
                    k: v
                    for k, v in pick_all(scope).items()
                    if k.startswith(cloudevents.HEADER_PREFIX)
                }
                query = scope.get("query_string", b"")
                return Accepted(
                    await accept_cloudevents(
                        gw, principal, kind, ce, content_type, query, body, key, trace
                    )
                )
            return Accepted(await accept(gw, principal, loads(body, "body"), key, trace))

        started = perf_counter()
        response = await answer(work())
        metrics.answered(scope["path"], "POST", status_of(response), perf_counter() - started)
        await response(scope, receive, send)


def status_of(response: ASGIApp) -> int:
    """The status a prepared answer will send (Accepted: 202; others carry theirs)."""
    if isinstance(response, Accepted):
        return 202
    status = getattr(response, "status_code", 200)
    return status if isinstance(status, int) else 200


def timed(send: Send, scope: Scope) -> Send:
    """``send`` that counts the answer of a request FastAPI routes, by the template of
    the route it matched (``scope["route"]``, set by the router), as it starts."""
    started = perf_counter()

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            template = getattr(scope.get("route"), "path", None)
            route = template if isinstance(template, str) else "unmatched"
            seconds = perf_counter() - started
            metrics.answered(route, scope["method"], message["status"], seconds)
        await send(message)

    return sender


async def authenticated(handler: Handler, gw: Gateway, request: Request) -> ASGIApp:
    return await handler(gw, await authenticate(request), request)


async def answer(work: Awaitable[ASGIApp]) -> ASGIApp:
    """Run a handler: its response, or the answer its error gets on the FastAPI routes
    too (:func:`from_exception`). The caller sends it, so that a stream that lives for
    hours holds no frame of this function nor any closure (bench c counts that memory)."""
    try:
        return await work
    except Exception as exc:
        return from_exception(exc)


class Accepted:
    """``202`` with a JSON body, as two bare ASGI messages."""

    __slots__ = ("body",)

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = (b"content-length", str(len(self.body)).encode())
        await send({"type": "http.response.start", "status": 202, "headers": [JSON_202, length]})
        await send({"type": "http.response.body", "body": self.body})


def releasing(send: Send, release: Callable[[], None]) -> Send:
    """``send`` that ends the request's fair-share turn as its response starts: a
    stream (``/v1/feed``) would otherwise hold a turn for as long as it is open."""

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            release()
        await send(message)

    return sender


def client_key(gw: Gateway, scope: Scope) -> str:
    """Whom a request counts against: its token's subject when it carries a valid one,
    else its address."""
    headers = pick_headers(scope, TOKEN_HEADERS)
    try:
        token = raw_token(
            headers.get(b"authorization"), headers.get(b"cookie"), scope.get("query_string", b"")
        )
        if token is not None:
            return "sub:" + gw.verifier.verify(token).sub
    except NotifyError:
        pass  # the route itself refuses it; until then it counts by address
    client = scope.get("client")
    return "addr:" + (client[0] if client else "")


def pick_headers(scope: Scope, wanted: frozenset[bytes]) -> dict[bytes, str]:
    """The first value of each ``wanted`` header, in one pass over the raw headers."""
    headers: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in wanted and name not in headers:
            headers[name] = value.decode("latin-1")
    return headers


def pick_all(scope: Scope) -> dict[str, str]:
    """Every header, by lower-case name (first value), for the rare request that needs
    more than the few the fast path picks."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers
