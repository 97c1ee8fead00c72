"""``GET /problems`` and ``/problems/<code>``: the page each problem ``type`` points to."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from notify.errors import CATALOGUE, NotFound, ProblemType

router = APIRouter(tags=["operations"])
HEADERS = {
    "Content-Security-Policy": "default-src 'none'",
    "Cache-Control": "public, max-age=3600",
}
CODE = re.compile(r"`([^`]+)`")


def _text(value: str) -> str:
    """Escaped, with `backticks` as <code>."""
    return CODE.sub(r"<code>\1</code>", html.escape(value))


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )


def _entry(code: str, problem: ProblemType) -> str:
    return (
        f"<h1>{html.escape(problem.title)}</h1><p>Status {problem.status}, code"
        f" <code>{html.escape(code)}</code></p><p>{_text(problem.help)}</p>"
        '<p><a href="./">All problem types</a></p>'
    )


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "json" in accept and "html" not in accept


ENTRY: dict[str, Any] = {
    "type": "object",
    "required": ["status", "title", "help"],
    "properties": {
        "code": {"type": "string"},
        "status": {"type": "integer"},
        "title": {"type": "string"},
        "help": {"type": "string"},
    },
}


def page_or_json(schema: dict[str, Any]) -> dict[int | str, Any]:
    """An HTML page, or JSON for a client whose Accept asks for JSON and not HTML."""
    return {200: {"content": {"application/json": {"schema": schema}}}}


@router.get("/problems/", include_in_schema=False)
@router.get(
    "/problems",
    summary="Every problem type the API answers with",
    response_class=HTMLResponse,
    responses=page_or_json({"type": "object", "additionalProperties": ENTRY}),
)
async def index(request: Request) -> Response:
    if _wants_json(request):
        return JSONResponse(
            {
                code: {"status": p.status, "title": p.title, "help": p.help}
                for code, p in CATALOGUE.items()
            }
        )
    items = "".join(
        f'<li><a href="/problems/{html.escape(code)}">{html.escape(code)}</a>'
        f" ({p.status}): {html.escape(p.title)}</li>"
        for code, p in CATALOGUE.items()
    )
    return HTMLResponse(
        _page("notify problem types", f"<h1>Problem types</h1><ul>{items}</ul>"), headers=HEADERS
    )


@router.get(
    "/problems/{code}",
    summary="What one problem type means and what to do",
    response_class=HTMLResponse,
    responses=page_or_json(ENTRY),
)
async def entry(code: str, request: Request) -> Response:
    problem = CATALOGUE.get(code)
    if problem is None:
        raise NotFound(f"no problem type {code[:64]!r}; GET /problems lists them", field="code")
    if _wants_json(request):
        return JSONResponse(
            {"code": code, "status": problem.status, "title": problem.title, "help": problem.help}
        )
    return HTMLResponse(_page(problem.title, _entry(code, problem)), headers=HEADERS)
