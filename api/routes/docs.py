"""/docs: Swagger UI served from an installed package (swagger-ui-bundle-v2), so it
works offline; and /openapi.json made true to the server by one pass over FastAPI's
document: the bearer scheme for /docs' Authorize button, ``security: []`` on public
operations, and every error each operation answers as problem+json, from one table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import swagger_ui_bundle  # static files only: Swagger UI's release, packaged
from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.responses import Response
from starlette.routing import BaseRoute

from notify.api.deps import authenticate
from notify.api.schemas import COMPONENTS
from notify.errors import NotFound

router = APIRouter(include_in_schema=False)
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")
TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
}
# Swagger UI sets inline styles; scripts stay 'self' only
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>notify API</title>
<link rel="icon" href="/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body></html>
"""


def vendor() -> Path:
    return Path(str(swagger_ui_bundle.swagger_ui_path))


@router.get("/docs")
async def docs() -> Response:
    return Response(
        PAGE,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"},
    )


@router.get("/docs/assets/{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound(f"no asset {name!r}")
    body = (vendor() / name).read_bytes()
    return Response(
        body,
        media_type=TYPES[Path(name).suffix],
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


PROBLEM_RESPONSES: dict[int, str] = {
    400: "an event id (`after`, `event_id`, `Last-Event-ID`) the server did not give out",
    401: "no token, or a malformed, badly signed or expired one",
    403: "the token lacks the right, or a cookie-authenticated write came from another origin",
    404: "no such resource, or it belongs to another user",
    409: "the resource's state does not allow this now",
    413: "the body or an event is over a size limit",
    415: "a cookie-authenticated write without a JSON content type",
    422: "invalid input: `field` names the first bad field, `errors` every one found",
    429: "over a rate limit (or too many failed sign-ins); wait Retry-After seconds",
    503: "Redis is unavailable now; nothing was half-stored; retry after Retry-After seconds",
}
RETRY_AFTER = {
    "Retry-After": {
        "required": True,
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 0},
    }
}
PROBLEM_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "example": "Bearer"}},
    429: RETRY_AFTER,
    503: RETRY_AFTER,
}
AUTHENTICATED = (401, 429, 503)
"""What every operation that takes a token may answer (429: too many failed sign-ins
from one address; 503: the rate limits and the data live in Redis)."""
COOKIE_WRITE = (403, 415)
"""What a state-changing operation may answer to a cookie-authenticated request (CSRF)."""
WRITES = frozenset({"post", "put", "patch", "delete"})
ANSWERS: dict[str, tuple[int, ...]] = {
    "POST /v1/events": (403, 413, 422),
    "POST /v1/events/batch": (403, 413, 422),
    "GET /v1/events": (400, 403, 422),
    "GET /v1/stream": (400, 403, 422),
    "GET /v1/feed": (400, 403, 422),
    "GET /healthz": (),
    "GET /readyz": (503,),
    "GET /metrics": (),
    "POST /v1/subscriptions/preview": (400, 403, 404, 413, 422),
    "POST /v1/subscriptions": (403, 409, 413, 422),
    "GET /v1/subscriptions": (403, 422),
    "GET /v1/subscriptions/{sub_id}": (404,),
    "PATCH /v1/subscriptions/{sub_id}": (403, 404, 409, 413, 422),
    "DELETE /v1/subscriptions/{sub_id}": (404,),
    "POST /v1/subscriptions/{sub_id}/rotate-secret": (403, 404, 409),
    "POST /v1/subscriptions/{sub_id}/replay": (400, 403, 404, 409, 413, 422),
    "GET /v1/deliveries": (404, 422),
    "GET /v1/deliveries/{delivery_id}": (404,),
    "POST /v1/deliveries/{delivery_id}/retry": (404, 409),
    "GET /v1/unsubscribe/{token}": (404, 503),
    "POST /v1/unsubscribe/{token}": (404, 503),
    "GET /problems": (),
    "GET /problems/{code}": (404,),
    "GET /v1/topics": (),
    "GET /v1/topics/{topic_id}": (404, 422),
    "PUT /v1/topics/{topic_id}": (403, 413, 422),
    "DELETE /v1/topics/{topic_id}": (403, 404, 422),
}
"""The errors each operation answers besides AUTHENTICATED and COOKIE_WRITE, all as
problem+json (a unit test checks that every operation is listed)."""
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def authenticated(route: APIRoute) -> bool:
    def needs(dependant: Dependant) -> bool:
        return dependant.call is authenticate or any(needs(d) for d in dependant.dependencies)

    return needs(route.dependant)


def public_operations(routes: Sequence[BaseRoute]) -> set[str]:
    """``"GET /healthz"`` for each documented operation that takes no token (walked
    as get_openapi walks them, through included routers)."""
    return {
        f"{method} {context.path_format}"
        for context in iter_route_contexts(routes)
        if isinstance(route := context.original_route, APIRoute)
        and route.include_in_schema
        and not authenticated(route)
        for method in context.methods or ()
    }


def problem_response(status: int, given: dict[str, Any] | None) -> dict[str, Any]:
    """The problem+json answer for ``status``, keeping a route's own description and any
    other content type it documents (an HTML page for a person's browser)."""
    response = dict(given or {})
    response.setdefault("description", PROBLEM_RESPONSES[status])
    content = {
        media: body
        for media, body in response.get("content", {}).items()
        if media != "application/json"  # FastAPI's default: never sent for an error
    }
    content["application/problem+json"] = {"schema": PROBLEM_REF}
    response["content"] = content
    if status in PROBLEM_HEADERS:
        response["headers"] = PROBLEM_HEADERS[status]
    return response


def document(schema: dict[str, Any], routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The generated document made true to the server: every error each operation can
    answer, as problem+json (FastAPI's HTTPValidationError is never sent); public
    operations marked as needing no token; the bearer scheme for the rest."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(COMPONENTS)
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A notify token (notify dev prints some; notify token makes more)",
        }
    }
    schema["security"] = [{"bearer": []}]
    public = public_operations(routes)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            statuses = set(ANSWERS.get(name, ()))
            if name in public:
                operation["security"] = []
            else:
                statuses.update(AUTHENTICATED)
                if method in WRITES:
                    statuses.update(COOKIE_WRITE)
            responses = operation.setdefault("responses", {})
            for code in [c for c in responses if c.isdigit() and int(c) >= 400]:
                if int(code) not in statuses:
                    del responses[code]  # FastAPI's default 422 where none can happen
            for status in sorted(statuses):
                responses[str(status)] = problem_response(status, responses.get(str(status)))
    return schema


def with_bearer(app: FastAPI) -> None:
    """Serves the OpenAPI document made by :func:`document`: the JWT bearer scheme
    (the Authorize button of /docs) and every documented response."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            app.openapi_schema = document(schema, app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
