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

from notify.errors import (
    CATALOGUE,
    PROBLEM_BASE,
    HttpError,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    NotifyError,
    RateLimited,
    StoreUnavailable,
)
from notify.redis.errors import REDIS_ERRORS, unavailable

log = logging.getLogger("notify.api")
MEDIA_TYPE = "application/problem+json"
BASE = [PROBLEM_BASE]
"""Where problem types point: set once per process by :func:`install` from
``NOTIFY_PROBLEM_BASE_URL`` (``problem`` is called far from any request's settings)."""


def problem(
    kind: type[NotifyError],
    detail: str,
    *,
    status: int | None = None,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """A problem+json answer of the ``kind`` of error: its code and title come from the
    class, so that no code is sent that the catalogue (``notify.errors.CATALOGUE``)
    does not hold; ``status`` only for an HTTP error that carries its own."""
    body: dict[str, Any] = {
        "type": BASE[0] + kind.code,
        "title": kind.title,
        "status": status or kind.status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    if extra:
        body.update(extra)
    return Response(orjson.dumps(body), body["status"], headers=headers, media_type=MEDIA_TYPE)


def from_error(exc: NotifyError) -> Response:
    """notify's own error as a problem, with the headers its kind calls for; one whose
    code has no page in the catalogue is an internal error to a client."""
    if exc.code not in CATALOGUE:  # a ConfigError or DeliveryError met within a request
        return internal(exc)
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
        type(exc), exc.detail, status=exc.status, field=exc.field, headers=headers, extra=extra
    )


def from_exception(exc: Exception, request: Request | None = None) -> Response:
    """The answer to any error a handler raised: the fast path (``answer``) and the
    FastAPI routes (every handler :func:`install` adds) both end here, so that one
    fault is one answer on every endpoint. A Redis failure, translated by the adapters
    or raised raw by redis-py, is the same 503 ``store-unavailable`` with
    ``Retry-After``. ``request`` (the routes') lets a 405 name the allowed methods."""
    if isinstance(exc, NotifyError):
        return from_error(exc)
    store = unavailable(exc)
    if store is not None:
        log.warning("redis unavailable: %s: %s", type(exc).__name__, exc)
        return from_error(store)
    if isinstance(exc, RequestValidationError):
        return from_validation(exc)
    if isinstance(exc, HTTPException):
        return from_http(exc, request)
    if isinstance(exc, ClientDisconnect):
        # the client hung up while sending its body: nobody is left to read an answer
        log.debug("client disconnected mid-request")
        return Response(status_code=400)
    return internal(exc)


def internal(exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return problem(NotifyError, "an unexpected error occurred")


def from_validation(exc: RequestValidationError) -> Response:
    """FastAPI's parameter validation, as notify's own: ``invalid-input`` naming every
    bad field."""
    found = exc.errors() or [{"loc": (), "msg": "invalid request"}]
    errors = [
        {"field": (f := _field(tuple(e.get("loc", ())))), "detail": f"{f}: {e['msg']}"}
        for e in found
    ]
    first = errors[0]
    return problem(InvalidInput, first["detail"], field=first["field"], extra={"errors": errors})


def from_http(exc: HTTPException, request: Request | None) -> Response:
    """Starlette's own refusals (no route, no such method on a route) as problems."""
    kind = {404: NotFound, 405: MethodNotAllowed}.get(exc.status_code, HttpError)
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and request is not None:
        headers["Allow"] = allowed_methods(request)
    return problem(kind, str(exc.detail), status=exc.status_code, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or ".".join(str(p) for p in loc)


HANDLED: tuple[type[Exception], ...] = (
    NotifyError,
    RequestValidationError,
    HTTPException,
    *REDIS_ERRORS,  # raised by a raw client, outside the adapters
    ClientDisconnect,
    Exception,  # Starlette answers this one outside the middleware (no CORS headers)
)
"""What the FastAPI routes answer through :func:`from_exception`. Each class is named:
an error handled by ``Exception`` alone would be answered outside the middleware."""


def install(app: FastAPI, base: str = PROBLEM_BASE) -> None:
    BASE[0] = base

    async def answer(request: Request, exc: Exception) -> Response:
        return from_exception(exc, request)

    for error in HANDLED:
        app.add_exception_handler(error, answer)


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
