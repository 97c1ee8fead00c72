"""One fault, one answer: an error that escapes a FastAPI route and one that escapes the
fast path (``fastpath.answer``) get the same status, headers and problem body, however
redis-py raised it: every Redis availability failure is the 503 ``store-unavailable``
with ``Retry-After``, raw or translated by the adapters. The errors are redis-py's own,
built by its reply parser from the error lines Redis sends; both sides are served by
real ASGI apps through httpx."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from redis import exceptions as rx
from redis._parsers.base import BaseParser
from starlette.types import Receive, Scope, Send

from notify.api import problems
from notify.api.fastpath import answer
from notify.errors import StoreUnavailable, TooLarge
from notify.redis.errors import translated


def reply(line: str) -> Exception:
    """The exception redis-py raises for the error reply ``-<line>``."""
    exc: Exception = BaseParser.parse_error(line)
    return exc


def translated_by_an_adapter(exc: Exception) -> Exception:
    """What an adapter raises for ``exc`` (``StoreUnavailable``)."""
    try:
        with translated():
            raise exc
    except StoreUnavailable as store:
        return store
    raise AssertionError("not translated")


UNAVAILABLE: list[tuple[Exception, str]] = [
    (reply("OOM command not allowed when used memory > 'maxmemory'."), "out of memory"),
    (reply("LOADING Redis is loading the dataset in memory"), "loading its data"),
    (reply("READONLY You can't write against a read only replica."), "read-only replica"),
    (reply("MASTERDOWN Link with MASTER is down"), "no master"),
    (reply("MISCONF Redis is configured to save RDB snapshots"), "cannot persist"),
    (reply("NOREPLICAS Not enough good replicas to write."), "not enough replicas"),
    (reply("BUSY Redis is busy running a script."), "busy"),
    (reply("TRYAGAIN Multiple keys request during rehashing of slot"), "busy"),
    (reply("CLUSTERDOWN The cluster is down"), "cluster down"),
    (
        rx.ConnectionError("Error 111 connecting. Connection refused."),
        "unreachable",
    ),
    (rx.TimeoutError("Timeout reading from socket"), "timed out"),
    (rx.MaxConnectionsError("Too many connections"), "unreachable"),
    (rx.AuthenticationError("invalid username-password pair"), "unreachable"),
]


def serve_both(exc: Exception) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    """Clients of a FastAPI app whose one route raises ``exc``, and of an app that
    answers as the fast path does when its handler raises ``exc``."""
    routes = FastAPI()
    problems.install(routes)

    @routes.post("/fail")
    async def fail() -> None:
        raise exc

    async def handler() -> None:
        raise exc

    async def fast(scope: Scope, receive: Receive, send: Send) -> None:
        response = await answer(handler())  # type: ignore[arg-type]
        await response(scope, receive, send)

    # Starlette answers an error it handles as Exception alone, then raises it again for
    # the server to log
    return tuple(  # type: ignore[return-value]
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://gw.test",
        )
        for app in (routes, fast)
    )


async def answers(exc: Exception) -> tuple[httpx.Response, httpx.Response]:
    route, fast = serve_both(exc)
    async with route, fast:
        return await route.post("/fail"), await fast.post("/fail")


def same(route: httpx.Response, fast: httpx.Response) -> None:
    assert route.status_code == fast.status_code
    for name in ("content-type", "retry-after", "www-authenticate"):
        assert route.headers.get(name) == fast.headers.get(name), name
    assert route.content == fast.content


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "translated"])
@pytest.mark.parametrize(
    ("exc", "why"), UNAVAILABLE, ids=[f"{type(e).__name__}({why})" for e, why in UNAVAILABLE]
)
async def test_every_redis_availability_failure_is_one_503(
    exc: Exception, why: str, raw: bool
) -> None:
    route, fast = await answers(exc if raw else translated_by_an_adapter(exc))
    same(route, fast)
    assert route.status_code == 503
    assert route.headers["content-type"] == "application/problem+json"
    assert route.headers["retry-after"] == "1"
    assert route.json() == {
        "type": problems.BASE[0] + "store-unavailable",
        "title": "Event store unavailable",
        "status": 503,
        "detail": f"event store unavailable: {why}",
    }


@pytest.mark.parametrize(
    "exc",
    [
        reply("WRONGTYPE Operation against a key holding the wrong kind of value"),
        reply("NOSCRIPT No matching script. Please use EVAL."),
        rx.DataError("Invalid input of type: 'dict'"),
        KeyError("a bug"),
    ],
    ids=lambda v: type(v).__name__,
)
async def test_a_refusal_or_a_bug_is_one_500(exc: Exception) -> None:
    route, fast = await answers(exc)
    same(route, fast)
    assert route.status_code == 500 and route.json()["type"].endswith("/internal")


async def test_a_notify_error_is_answered_alike() -> None:
    route, fast = await answers(TooLarge("body is over the limit of 10 bytes"))
    same(route, fast)
    assert route.status_code == 413 and route.json()["type"].endswith("/too-large")
