"""/v1/unsubscribe/{token}: the signed link in every notification email.

``POST`` disables the subscription at once: RFC 8058 one-click, as mail clients send it
from ``List-Unsubscribe-Post`` (the body, ``List-Unsubscribe=One-Click``, is not
required, so the page's own button works too). ``GET`` only shows a page with that
button: link scanners that follow every URL in a mail must not unsubscribe anyone.
The signature is the only credential. Answers are small HTML pages, errors included,
since a person with a mail client reads them.
"""

from __future__ import annotations

import html
from dataclasses import replace
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from notify.api.deps import SettingsDep, Store
from notify.api.problems import from_error
from notify.errors import NotFound
from notify.redis.subscriptions import SubscriptionStore
from notify.settings import Settings
from notify.subscriptions import Subscription
from notify.unsubscribe import key_from, subscription_of, verify

router = APIRouter(tags=["unsubscribe"])
REASON = "unsubscribed by the recipient"
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}


def page(title: str, text: str, *, button: bool = False, status: int = 200) -> HTMLResponse:
    form = (
        '<form method="post"><button type="submit" name="List-Unsubscribe" '
        'value="One-Click">Unsubscribe</button></form>'
        if button
        else ""
    )
    body = (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family: sans-serif; max-width: 36em; margin: 3em auto">'
        f"<h1>{html.escape(title)}</h1><p>{text}</p>{form}</body></html>"
    )
    return HTMLResponse(body, status, headers=HEADERS)


async def signed(settings: Settings, redis: Store, token: str) -> Subscription:
    """The email subscription the token was signed for; NotFound otherwise."""
    key = key_from(
        settings.unsubscribe_secret.get_secret_value() if settings.unsubscribe_secret else None,
        settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
    )
    sub_id = subscription_of(token)
    sub = await SubscriptionStore(redis).get(sub_id) if key and sub_id else None
    if (
        key is None
        or sub is None
        or sub.kind != "email"
        or not verify(key, token, str(sub.sink.get("to", "")))
    ):
        raise NotFound("this unsubscribe link is not valid (any more)")
    return sub


def describe(sub: Subscription) -> str:
    return (
        f"notifications for <b>{html.escape(sub.channel)}</b> "
        f"to <b>{html.escape(str(sub.sink['to']))}</b>"
    )


def not_found(request: Request) -> Response:
    """A page for a person's browser; problem+json, like every API error, otherwise."""
    if "text/html" in request.headers.get("accept", ""):
        return page("Link not valid", "This unsubscribe link is not valid (any more).", status=404)
    return from_error(NotFound("this unsubscribe link is not valid (any more)"))


NOT_VALID: dict[int | str, Any] = {
    404: {
        "description": "the link is not valid (any more): a page for a browser (Accept:"
        " text/html), problem+json otherwise",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
}


@router.get("/v1/unsubscribe/{token}", response_class=HTMLResponse, responses=NOT_VALID)
async def confirm(request: Request, token: str, redis: Store, settings: SettingsDep) -> Response:
    """A confirmation page whose button POSTs to the same URL."""
    try:
        sub = await signed(settings, redis, token)
    except NotFound:
        return not_found(request)
    if not sub.enabled:
        return page("Unsubscribed", f"You no longer receive {describe(sub)}.")
    return page("Unsubscribe?", f"Stop receiving {describe(sub)}?", button=True)


@router.post("/v1/unsubscribe/{token}", response_class=HTMLResponse, responses=NOT_VALID)
async def unsubscribe(
    request: Request, token: str, redis: Store, settings: SettingsDep
) -> Response:
    """One-click unsubscribe (RFC 8058): disables the subscription; idempotent."""
    try:
        sub = await signed(settings, redis, token)
    except NotFound:
        return not_found(request)
    if sub.enabled:
        await SubscriptionStore(redis).update(
            sub.id, lambda s: replace(s, enabled=False, disabled_reason=REASON)
        )
    return page("Unsubscribed", f"You no longer receive {describe(sub)}.")
