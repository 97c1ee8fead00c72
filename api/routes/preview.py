"""POST /v1/subscriptions/preview: the body a sink would send for an event.

A sink configuration is validated exactly as when a subscription is saved, then
rendered for a sample event (``event``) or a retained one (``event_id``, which needs
the right to read its channel). The answer is the body itself with the content type
the sink would send, so a user sees their template's output before any delivery.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from notify import alerts, events, formats, mail
from notify.api import schemas
from notify.api.deps import Auth, GatewayDep
from notify.api.routes.publish import read_json
from notify.api.routes.subscriptions import body_doc
from notify.api.state import Gateway
from notify.auth import Principal
from notify.errors import InvalidInput, NotFound
from notify.mailtemplates import Templates
from notify.settings import Settings
from notify.smtpurl import parse_sender
from notify.subscriptions import validate_sink
from notify.templating import TemplateError

router = APIRouter(tags=["subscriptions"])
MAX_BODY = 128 * 1024
PREVIEW_ID = "sub_preview"
PREVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["sink"],
    "additionalProperties": False,
    "properties": {
        "sink": schemas.SINK,
        "event": {**schemas.EVENT, "description": "a sample event"},
        "event_id": {**schemas.EVENT_ID, "description": "a retained event instead of `event`"},
    },
    "oneOf": [{"required": ["event"]}, {"required": ["event_id"]}],
}
RENDERED: dict[str, Any] = {
    "description": "the body the sink would send, in its content type",
    "content": {
        "application/json": {"schema": {"description": "web, monitoring and JSON webhooks"}},
        "application/cloudevents+json": {"schema": {"type": "object"}},
        "text/plain": {"schema": {"type": "string", "description": "a template's text"}},
        "message/rfc822": {"schema": {"type": "string", "description": "an email"}},
    },
}


@functools.lru_cache(maxsize=4)
def email_templates(directory: Path | None, sender: str) -> Templates:
    return mail.prepare_templates(directory, parse_sender(sender))


@router.post(
    "/v1/subscriptions/preview",
    openapi_extra=body_doc(PREVIEW_SCHEMA),
    responses={200: RENDERED},
)
async def preview(request: Request, principal: Auth, gw: GatewayDep) -> Response:
    """Render a sink (as in a subscription) for a sample or a retained event."""
    raw = await read_json(request, MAX_BODY)
    if not isinstance(raw, dict) or "sink" not in raw:
        raise InvalidInput('body must be {"sink": {…}, "event": {…}}', field="sink")
    unknown = sorted(set(raw) - {"sink", "event", "event_id"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
    settings = gw.settings
    sink = validate_sink(raw["sink"], allow_private=settings.allow_private_targets)
    envelope = await event_of(raw, gw, principal)
    try:
        content, content_type = render(sink, envelope, principal.sub, settings)
    except TemplateError as exc:
        raise InvalidInput(f"template error: {exc}", field="sink.template") from exc
    return Response(content, 200, headers={"content-type": content_type})


async def event_of(raw: dict[str, Any], gw: Gateway, principal: Principal) -> bytes:
    """The envelope to render: a retained event, or the sample made into one."""
    if ("event" in raw) == ("event_id" in raw):
        raise InvalidInput("give either event or event_id", field="event")
    if "event_id" in raw:
        event_id = raw["event_id"]
        events.parse_id(event_id, field="event_id")
        entry = await gw.log.event(event_id)
        if entry is None:
            raise NotFound("no such event is retained")
        principal.require_read(entry.channel, field="event_id")
        return events.with_id(entry.id, entry.body)
    draft = events.checked_draft(
        raw["event"], max_bytes=gw.settings.max_event_bytes, time=None, prefix="event."
    )
    # a sample gets an id of the present moment, as it would when published now
    return events.with_id(f"{int(time.time() * 1000)}-0", draft.body)


def render(
    sink: dict[str, Any], envelope: bytes, user: str, settings: Settings
) -> tuple[bytes, str]:
    kind = sink["kind"]
    if kind == "webhook":
        body = formats.render_body(sink, envelope)
        return body.content, body.content_type
    event = orjson.loads(envelope)
    if kind == "email":
        templates = email_templates(settings.email_templates, settings.email_from)
        to = mail.Addressing(
            parse_sender(settings.email_from),
            str(sink["to"]),
            PREVIEW_ID,
            str(event["channel"]),
            settings.public_url.rstrip("/") + "/v1/unsubscribe/preview",
        )
        msg = mail.event_message(event, "msg_preview", to, templates, sink.get("template"))
        return mail.as_bytes(msg), "message/rfc822"
    if kind == "monitoring":
        seen = alerts.observe(event, subscription=PREVIEW_ID, user=user, now=event["time"])
        return orjson.dumps([seen.alert]), "application/json"
    return envelope, "application/json"  # web: the envelope, as on the feed
