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
    """The caller's principal. Failures are counted per client address across all
    gateways; over the limit, a failure is answered 429 instead of 401. A valid token
    is never refused for its address: requests without a token (or with a bad one)
    from a shared address must not lock its other users out."""
    gw = gateway_of(conn)
    address = conn.client.host if conn.client else None
    method = conn.scope.get("method", "GET")
    by_cookie = not conn.headers.get("authorization") and bool(conn.cookies.get(COOKIE))
    if by_cookie and conn.scope["type"] == "websocket" and "origin" in conn.headers:
        # browsers always send Origin on a WebSocket handshake (RFC 6455 10.2); a
        # client without one is no browser, so no other site's page can be behind it
        check_cookie_origin(
            origin=conn.headers.get("origin"),
            referer=conn.headers.get("referer"),
            trusted=trusted(gw, conn.url.scheme, conn.headers.get("host")),
            loopback=gw.settings.cors_allow_loopback,
        )
    elif by_cookie and method in STATE_CHANGING:
        guard_cookie_write(
            gw,
            method,
            conn.url.scheme,
            conn.headers.get("host"),
            conn.headers.get("origin"),
            conn.headers.get("referer"),
            conn.headers.get("content-type"),
        )
    try:
        return principal_of(conn)
    except Unauthenticated:
        await gw.limiter.auth_failed(address)
        gw.limiter.check_address(address)
        raise


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


async def authenticate_raw(
    gw: Gateway,
    address: str | None,
    authorization: str | None,
    cookie_header: str | None,
    query_string: bytes,
    *,
    csrf: tuple[str, str, str | None, str | None, str | None, str | None] | None = None,
) -> Principal:
    """:func:`authenticate` for a bare ASGI request (the publish fast path); ``csrf``
    is (method, scheme, host, origin, referer, content type) for a write."""
    cookie = cookie_parser(cookie_header).get(COOKIE) if cookie_header else None
    if csrf is not None and csrf[0] in STATE_CHANGING and not authorization and cookie:
        guard_cookie_write(gw, *csrf)
    try:
        token = raw_token(authorization, cookie_header, query_string)
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
    """:func:`pick_token` from the raw header values and query string."""
    cookie = cookie_parser(cookie_header).get(COOKIE) if cookie_header else None
    query = None
    if not authorization and not cookie and query_string:
        query = dict(parse_qsl(query_string.decode("latin-1"))).get(QUERY)
    return pick_token(authorization, cookie, query)


def principal_of(conn: HTTPConnection) -> Principal:
    """Bearer header, else the ``notify_token`` cookie, else the ``token`` query
    parameter. A bad token is refused; it never falls back to a weaker source."""
    token = pick_token(
        conn.headers.get("authorization"),
        conn.cookies.get(COOKIE),
        conn.query_params.get(QUERY),
    )
    if token is None:
        raise Unauthenticated("no token: send 'Authorization: Bearer <token>'")
    principal = gateway_of(conn).verifier.verify(token)
    conn.state.principal = principal
    return principal


Auth = Annotated[Principal, Depends(authenticate)]
Store = Annotated[AsyncRedis, Depends(get_redis)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]
