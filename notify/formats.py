"""Webhook body formats (pure: an event envelope in, exact bytes out).

``standard`` sends the envelope as stored. ``cloudevents`` sends a structured-mode
CloudEvent. ``slack``, ``discord`` and ``teams`` send the body each service's
incoming webhook takes, with a readable default rendering of any event: a title (the
event's ``data.summary|title|message``, else "<type> on <channel>"), the data as
indented JSON and the event's type, channel, time and id. ``template`` renders the
subscription's Jinja template (notify.templating); so may the chat formats, where
an output that is a JSON object is the whole body and any other text becomes the
message's text.

Limits follow each service's documented schema (Slack header 150 characters and
section 3,000; Discord content 2,000, embed title 256, description 4,096, field
value 1,024; Teams stays far under its 28 KB), so a large event is cut, never refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from notify.mail import render_data, summary_of
from notify.templating import render

FORMATS = ("standard", "cloudevents", "slack", "discord", "teams", "template")
CHAT = frozenset({"slack", "discord", "teams"})
JSON = "application/json"
CLOUDEVENTS_JSON = "application/cloudevents+json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
CE_SPECVERSION = "1.0"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"


@dataclass(frozen=True, slots=True)
class Body:
    content: bytes
    content_type: str


def render_body(sink: Mapping[str, Any], envelope: bytes) -> Body:
    """The body a webhook sink sends for a stored envelope; TemplateError from a
    user template that fails."""
    fmt = sink.get("format", "standard")
    if fmt == "standard":
        return Body(envelope, JSON)
    event = orjson.loads(envelope)
    if fmt == "cloudevents":
        return Body(orjson.dumps(cloudevent(event)), CLOUDEVENTS_JSON)
    template = sink.get("template")
    if fmt == "template":
        text = render(str(template), {"event": event})
        return Body(text.encode(), JSON if is_json(text) else TEXT)
    if template is not None:
        text = render(str(template), {"event": event})
        if text.lstrip().startswith("{") and is_json(text):
            return Body(text.encode(), JSON)
        return Body(orjson.dumps(CHAT_TEXT[fmt](text, event)), JSON)
    return Body(orjson.dumps(CHAT_DEFAULT[fmt](event)), JSON)


def is_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def title_of(event: Mapping[str, Any]) -> str:
    return summary_of(event.get("data")) or f"{event.get('type', '')} on {event.get('channel', '')}"


def data_text(event: Mapping[str, Any], limit: int) -> str:
    text, _, _ = render_data(event.get("data"), limit)
    return text


def cloudevent(event: Mapping[str, Any]) -> dict[str, Any]:
    """Structured mode: a CloudEvent given in keeps its own attributes (id, source,
    time, subject, extensions …); notify's id and channel ride along as extensions."""
    kept = dict(event.get("ce") or {})
    binary = kept.pop("data_base64", False) is True
    out: dict[str, Any] = {
        "specversion": CE_SPECVERSION,
        "id": str(event["id"]),
        "source": "/channels/" + str(event["channel"]),
        "type": str(event["type"]),
        "time": str(event["time"]),
        "datacontenttype": JSON,
    }
    out.update(kept)
    out["specversion"] = CE_SPECVERSION
    out["channel"] = str(event["channel"])
    out["notifyid"] = str(event["id"])
    if binary:
        out["data_base64"] = event.get("data")
    else:
        out["data"] = event.get("data")
    return out


def mrkdwn(text: str) -> str:
    """Slack's three control characters, escaped as Slack documents."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def facts(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        ("Type", str(event.get("type", ""))),
        ("Channel", str(event.get("channel", ""))),
        ("Time", str(event.get("time", ""))),
        ("Event", str(event.get("id", ""))),
    ]


def slack(event: Mapping[str, Any]) -> dict[str, Any]:
    title = title_of(event)
    data = mrkdwn(data_text(event, 2_800)).replace("```", "`\u200b``")
    context = " · ".join(f"{k}: `{mrkdwn(v)}`" for k, v in facts(event) if v)
    return {
        "text": cut(mrkdwn(title), 3_000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": cut(title, 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{data}```"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(context, 3_000)}]},
        ],
    }


def discord(event: Mapping[str, Any]) -> dict[str, Any]:
    title = title_of(event)
    data = data_text(event, 3_900).replace("```", "`\u200b``")
    embed: dict[str, Any] = {
        "title": cut(title, 256),
        "description": f"```json\n{data}\n```",
        "fields": [
            {"name": k, "value": cut(v, 1_024), "inline": True} for k, v in facts(event)[:2] if v
        ],
        "footer": {"text": cut(f"event {event.get('id', '')}", 2_048)},
    }
    if event.get("time"):
        embed["timestamp"] = str(event["time"])
    return {
        "content": cut(title, 2_000),
        # an event's text must never ping @everyone or a role
        "allowed_mentions": {"parse": []},
        "embeds": [embed],
    }


def card(body: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": ADAPTIVE_CARD,
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                },
            }
        ],
    }


def teams(event: Mapping[str, Any]) -> dict[str, Any]:
    return card(
        [
            {
                "type": "TextBlock",
                "text": cut(title_of(event), 500),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
            },
            {
                "type": "FactSet",
                "facts": [{"title": k, "value": v} for k, v in facts(event) if v],
            },
            {
                "type": "TextBlock",
                "text": data_text(event, 4_000),
                "fontType": "Monospace",
                "wrap": True,
            },
        ]
    )


CHAT_DEFAULT: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "slack": slack,
    "discord": discord,
    "teams": teams,
}
CHAT_TEXT: dict[str, Callable[[str, Mapping[str, Any]], dict[str, Any]]] = {
    "slack": lambda text, event: {"text": cut(text, 40_000)},
    "discord": lambda text, event: {
        "content": cut(text, 2_000),
        "allowed_mentions": {"parse": []},
    },
    "teams": lambda text, event: card([{"type": "TextBlock", "text": text, "wrap": True}]),
}
