"""/docs: Swagger UI served from an installed package (swagger-ui-bundle-v2), so it
works offline, with a bearer security scheme in the OpenAPI document for its
Authorize button."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import swagger_ui_bundle  # static files only: Swagger UI's release, packaged
from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.responses import Response

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


def with_bearer(app: FastAPI) -> None:
    """Declares the JWT bearer scheme (Authorization header) for every operation, so
    that /docs has an Authorize button and generated clients send the token."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            components = schema.setdefault("components", {})
            components.setdefault("securitySchemes", {})["bearer"] = {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A notify token (notify dev prints some; notify token makes more)",
            }
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
