"""FastAPI dependencies: the process state and the caller's identity."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends
from starlette.requests import HTTPConnection, cookie_parser

from notify.api.state import Gateway
from notify.auth import COOKIE, QUERY, Principal, pick_token
from notify.csrf import STATE_CHANGING, check_cookie_origin, check_cookie_write
from notify.errors import Unauthenticated
from notify.redis.client import AsyncRedis
from notify.settings import Settings


async def get_gateway(conn: HTTPConnection) -> Gateway:
    return gateway_of(conn)


def gateway_of(conn: HTTPConnection) -> Gateway:
    gw: Gateway = conn.app.state.gateway
    return gw


# dependencies are `async def` so FastAPI runs them on the event loop, not in a thread


async def get_redis(conn: HTTPConnection) -> AsyncRedis:
    return gateway_of(conn).redis


async def get_settings(conn: HTTPConnection) -> Settings:
    return gateway_of(conn).settings


async def authenticate(conn: HTTPConnection) -> Principal:
    """The caller's principal, for the FastAPI routes and the WebSocket handshake:
    :func:`authenticate_raw` on the connection's headers."""
    headers = conn.headers
    return await authenticate_raw(
        gateway_of(conn),
        conn.client.host if conn.client else None,
        headers.get("authorization"),
        headers.get("cookie"),
        conn.scope.get("query_string", b""),
        csrf=(
            HANDSHAKE if conn.scope["type"] == "websocket" else conn.scope["method"],
            conn.scope.get("scheme", "http"),  # not conn.url: a stream keeps its request,
            # and a URL object cached on it costs every open stream (bench c)
            headers.get("host"),
            headers.get("origin"),
            headers.get("referer"),
            headers.get("content-type"),
        ),
    )


def guard_cookie_write(
    gw: Gateway,
    method: str,
    scheme: str,
    host: str | None,
    origin: str | None,
    referer: str | None,
    content_type: str | None,
) -> None:
    """The one CSRF check (see :mod:`notify.csrf`) for a write authenticated by the
    cookie, in the FastAPI routes and the fast path alike."""
    check_cookie_write(
        method,
        origin=origin,
        referer=referer,
        content_type=content_type,
        trusted=trusted(gw, scheme, host),
        loopback=gw.settings.cors_allow_loopback,
    )


def trusted(gw: Gateway, scheme: str, host: str | None) -> list[str]:
    """The CORS origins, ``NOTIFY_PUBLIC_URL`` and the origin a request was sent to."""
    secure = scheme in ("https", "wss")
    own = [f"{'https' if secure else 'http'}://{host}"] if host else []
    return [*gw.settings.cors_origin_list, gw.settings.public_url, *own]


Csrf = tuple[str, str, str | None, str | None, str | None, str | None]
"""What the cookie checks read of a request: (method, scheme, host, origin, referer,
content type); the method of a WebSocket handshake is :data:`HANDSHAKE`."""
HANDSHAKE = "WEBSOCKET"


async def authenticate_raw(
    gw: Gateway,
    address: str | None,
    authorization: str | None,
    cookie_header: str | None,
    query_string: bytes,
    *,
    csrf: Csrf,
) -> Principal:
    """The caller's principal, from the raw header values and query string: the one
    check of the fast path and (through :func:`authenticate`) the FastAPI routes.

    A request authenticated by the cookie must pass the CSRF check (:mod:`notify.csrf`):
    a write, and a WebSocket handshake that carries an ``Origin`` (browsers always send
    one, RFC 6455 10.2; a client without one is no browser, so no other site's page can
    be behind it). Failures are counted per client address across all gateways; over
    the limit, a failure is answered 429 instead of 401. A valid token is never refused
    for its address: requests without a token (or with a bad one) from a shared address
    must not lock its other users out."""
    cookie = cookie_parser(cookie_header).get(COOKIE) if cookie_header else None
    if cookie and not authorization:
        method, scheme, host, origin, referer, content_type = csrf
        if method == HANDSHAKE:
            if origin is not None:
                check_cookie_origin(
                    origin=origin,
                    referer=referer,
                    trusted=trusted(gw, scheme, host),
                    loopback=gw.settings.cors_allow_loopback,
                )
        elif method in STATE_CHANGING:
            guard_cookie_write(gw, method, scheme, host, origin, referer, content_type)
    try:
        token = pick_token(authorization, cookie, query_token(authorization, cookie, query_string))
        if token is None:
            raise Unauthenticated("no token: send 'Authorization: Bearer <token>'")
        return gw.verifier.verify(token)
    except Unauthenticated:
        await gw.limiter.auth_failed(address)
        gw.limiter.check_address(address)
        raise


def raw_token(
    authorization: str | None, cookie_header: str | None, query_string: bytes
) -> str | None:
    """The token a request carries (:func:`pick_token`), from the raw header values and
    query string, as :func:`authenticate_raw` picks it."""
    cookie = cookie_parser(cookie_header).get(COOKIE) if cookie_header else None
    return pick_token(authorization, cookie, query_token(authorization, cookie, query_string))


def query_token(authorization: str | None, cookie: str | None, query_string: bytes) -> str | None:
    """The ``token`` query parameter, read only when neither header carries one (a bad
    token is refused; it never falls back to a weaker source)."""
    if authorization or cookie or not query_string:
        return None
    return dict(parse_qsl(query_string.decode("latin-1"))).get(QUERY)


Auth = Annotated[Principal, Depends(authenticate)]
Store = Annotated[AsyncRedis, Depends(get_redis)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]
