"""CORS headers, added the same way by the fast path and by the FastAPI routes.

Which origins are allowed is judged by :func:`notify.origins.cors_allows` alone; the
headers an answer gets are built here alone, by :func:`cors_headers`: the fast path
wraps ``send`` with :func:`with_cors`, and :class:`Cors` (Starlette's middleware, kept
for its preflight answers) does the same for every other request. An allowed origin is
named in ``Access-Control-Allow-Origin`` with credentials allowed; every answer says
``Vary: Origin``, as the Fetch standard asks of a server that names the origin (a cache
must not hand one origin's answer to another).
"""

from __future__ import annotations

from collections.abc import Collection

from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notify.origins import cors_allows
from notify.settings import Settings

Header = tuple[bytes, bytes]
VARY: tuple[Header, ...] = ((b"vary", b"Origin"),)
"""The headers of an answer to a request from no allowed origin."""
NAMED = frozenset((b"access-control-allow-origin", b"access-control-allow-credentials"))
"""The headers that name an allowed origin: they replace any the answer carries."""
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
ALLOWED_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "Last-Event-ID",
    "traceparent",
]


def enabled(settings: Settings) -> bool:
    """Whether CORS is on at all (``NOTIFY_CORS_ORIGINS`` or the loopback flag): when
    it is off, no answer gets any header, and the fast path keeps its bare ``send``."""
    return settings.cors_allow_loopback or bool(settings.cors_origins and settings.cors_origin_list)


def cors_headers(
    origin: str | None, allowed: Collection[str], loopback: bool
) -> tuple[Header, ...]:
    """The headers an answer to a request from ``origin`` gets while CORS is on."""
    if origin is None or not cors_allows(origin, allowed, loopback):
        return VARY
    return (
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-credentials", b"true"),
        *VARY,
    )


def adding(send: Send, extra: tuple[Header, ...]) -> Send:
    """``send`` that adds ``extra`` (of :func:`cors_headers`) to the answer's headers.
    When it names an origin, it replaces what the answer says itself (a static file's
    ``Access-Control-Allow-Origin: *``): one answer cannot allow two origins."""

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", ())
            if extra is not VARY:
                headers = [h for h in headers if h[0].lower() not in NAMED]
            message = {**message, "headers": [*headers, *extra]}
        await send(message)

    return sender


def with_cors(send: Send, origin: str | None, settings: Settings) -> Send:
    """The fast path's ``send``, with the headers :class:`Cors` adds on the routes."""
    if not enabled(settings):
        return send
    return adding(
        send, cors_headers(origin, settings.cors_origin_list, settings.cors_allow_loopback)
    )


class Cors(CORSMiddleware):
    """Starlette's CORSMiddleware for preflight requests, judging an origin by
    :func:`cors_allows`; every other answer gets :func:`cors_headers`, as on the fast
    path."""

    def __init__(self, app: ASGIApp, *, origins: list[str], loopback: bool) -> None:
        super().__init__(
            app,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=METHODS,
            allow_headers=ALLOWED_HEADERS,
        )
        self.loopback = loopback

    def is_allowed_origin(self, origin: str) -> bool:
        return cors_allows(origin, self.allow_origins, self.loopback)

    async def simple_response(
        self, scope: Scope, receive: Receive, send: Send, request_headers: Headers
    ) -> None:
        extra = cors_headers(request_headers.get("origin"), self.allow_origins, self.loopback)
        await self.app(scope, receive, adding(send, extra))
