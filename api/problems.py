"""RFC 9457 problem+json for every error the API returns."""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match

from notify.errors import PROBLEM_BASE, NotifyError, RateLimited, StoreUnavailable
from notify.redis.errors import REDIS_ERRORS, unavailable

log = logging.getLogger("notify.api")
MEDIA_TYPE = "application/problem+json"
BASE = [PROBLEM_BASE]
"""Where problem types point: set once per process by :func:`install` from
``NOTIFY_PROBLEM_BASE_URL`` (``problem`` is called far from any request's settings)."""


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": BASE[0] + code,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    if extra:
        body.update(extra)
    return Response(orjson.dumps(body), status, headers=headers, media_type=MEDIA_TYPE)


def from_error(exc: NotifyError) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    elif isinstance(exc, StoreUnavailable):
        headers["Retry-After"] = str(math.ceil(exc.retry_after))
    elif exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    extra = None
    if exc.field is not None or exc.errors:
        extra = {"errors": [{"field": e.field, "detail": e.detail} for e in exc.each()]}
    return problem(
        exc.status, exc.code, exc.title, exc.detail, field=exc.field, headers=headers, extra=extra
    )


def from_exception(exc: Exception) -> Response:
    """The answer to any error a handler raised: the fast path and the FastAPI routes
    both end here, so a Redis failure is the same 503 on every endpoint."""
    if isinstance(exc, NotifyError):
        return from_error(exc)
    store = unavailable(exc)
    if store is not None:
        log.warning("redis unavailable: %s: %s", type(exc).__name__, exc)
        return from_error(store)
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "internal", "Internal error", "an unexpected error occurred")


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or ".".join(str(p) for p in loc)


def install(app: FastAPI, base: str = PROBLEM_BASE) -> None:
    BASE[0] = base

    async def notify_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, NotifyError)
        return from_error(exc)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        found = exc.errors() or [{"loc": (), "msg": "invalid request"}]
        errors = [
            {"field": (f := _field(tuple(e.get("loc", ())))), "detail": f"{f}: {e['msg']}"}
            for e in found
        ]
        first = errors[0]
        return problem(
            422,
            "invalid-input",
            "Invalid input",
            first["detail"],
            field=first["field"],
            extra={"errors": errors},
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return problem(exc.status_code, code, str(exc.detail), str(exc.detail), headers=headers)

    async def any_error(_: Request, exc: Exception) -> Response:
        return from_exception(exc)

    async def client_gone(_: Request, exc: Exception) -> Response:
        # the client hung up while sending its body: nobody is left to answer
        log.debug("client disconnected mid-request")
        return Response(status_code=400)

    app.add_exception_handler(NotifyError, notify_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    for redis_error in REDIS_ERRORS:  # raised by a raw client, outside the adapters
        app.add_exception_handler(redis_error, any_error)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, any_error)


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. Starlette's 405 names only the
    first route whose path matched (``GET /v1/events`` is history, ``POST`` publish:
    its Allow said POST alone)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    )


METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
