"""FastAPI dependencies: the process state and the caller's identity."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends
from starlette.requests import HTTPConnection, cookie_parser

from notify.api.state import Gateway
from notify.auth import COOKIE, QUERY, Principal, pick_token
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
    gateways; an address over the limit is refused (429) before its token is read."""
    gw = gateway_of(conn)
    address = conn.client.host if conn.client else None
    gw.limiter.check_address(address)
    try:
        return principal_of(conn)
    except Unauthenticated:
        await gw.limiter.auth_failed(address)
        raise


async def authenticate_raw(
    gw: Gateway,
    address: str | None,
    authorization: str | None,
    cookie_header: str | None,
    query_string: bytes,
) -> Principal:
    """:func:`authenticate` for a bare ASGI request (the publish fast path)."""
    gw.limiter.check_address(address)
    try:
        token = raw_token(authorization, cookie_header, query_string)
        if token is None:
            raise Unauthenticated("no token: send 'Authorization: Bearer <token>'")
        return gw.verifier.verify(token)
    except Unauthenticated:
        await gw.limiter.auth_failed(address)
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
