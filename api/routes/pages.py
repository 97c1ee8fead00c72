"""The browser side, served from the package itself: notify.js, the console, the
preference page and their assets. Nothing is fetched from elsewhere at run time."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import Response

from notify.errors import NotFound

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).resolve().parent.parent / "static"
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
# Pages run only their own scripts and styles and talk only to their own gateway:
# event data is untrusted, and an injected tag can neither run nor load anything.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@cache
def asset(name: str) -> tuple[bytes, str]:
    """The bytes of a packaged asset and their ETag; NotFound for anything else."""
    path = (STATIC / name).resolve()
    if path.parent != STATIC or path.suffix not in TYPES or not path.is_file():
        raise NotFound(f"no asset {name!r}")
    body = path.read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def serve(request: Request, name: str, headers: dict[str, str]) -> Response:
    body, etag = asset(name)
    out = {**headers, "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=out)
    return Response(body, media_type=TYPES[Path(name).suffix], headers=out)


@router.get("/notify.js")
async def client(request: Request) -> Response:
    # a module imported by pages of other origins: readable cross-origin without
    # credentials; revalidated after five minutes so an upgrade reaches browsers soon
    return serve(
        request,
        "notify.js",
        {
            "Cache-Control": "public, max-age=300",
            "Access-Control-Allow-Origin": "*",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/")
async def console(request: Request) -> Response:
    return serve(request, "console.html", PAGE_HEADERS)


@router.get("/preferences")
async def preferences(request: Request) -> Response:
    return serve(request, "preferences.html", PAGE_HEADERS)


@router.get("/static/{name}")
async def static(request: Request, name: str) -> Response:
    if name.endswith(".html"):
        raise NotFound(f"no asset {name!r}")
    return serve(request, name, {**PAGE_HEADERS, "Cache-Control": "public, max-age=300"})
