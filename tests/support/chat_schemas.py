"""What Slack, Discord and Teams incoming webhooks accept, as each documents it.

Each checker returns the problems it finds in a body (empty when the service would
take it), so a local receiver can answer 400 as the service would. Only the parts of
the documented schemas notify uses are checked, with their documented limits.
Slack: api.slack.com/messaging/webhooks and the Block Kit reference; Discord: the
Execute Webhook and Embed Object references; Teams: "Create incoming webhooks" with
Adaptive Cards (a message with one attachment of contentType
application/vnd.microsoft.card.adaptive).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson


def _text(problems: list[str], where: str, value: Any, limit: int, empty: bool = False) -> None:
    if not isinstance(value, str):
        problems.append(f"{where}: not a string")
    elif len(value) > limit:
        problems.append(f"{where}: {len(value)} > {limit} characters")
    elif not value and not empty:
        problems.append(f"{where}: empty")


def slack(body: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if "text" not in body and "blocks" not in body:
        problems.append("no text and no blocks")
    if "text" in body:
        _text(problems, "text", body["text"], 40_000)
    blocks = body.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        return [*problems, "blocks: not a list of at most 50"]
    for i, block in enumerate(blocks):
        kind = block.get("type")
        text = block.get("text", {})
        if kind == "header":
            if text.get("type") != "plain_text":
                problems.append(f"blocks[{i}].text: a header takes plain_text")
            _text(problems, f"blocks[{i}].text.text", text.get("text"), 150)
        elif kind == "section":
            if text.get("type") not in ("plain_text", "mrkdwn"):
                problems.append(f"blocks[{i}].text.type")
            _text(problems, f"blocks[{i}].text.text", text.get("text"), 3_000)
        elif kind == "context":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= 10:
                problems.append(f"blocks[{i}].elements: 1-10")
            for j, e in enumerate(elements):
                _text(problems, f"blocks[{i}].elements[{j}].text", e.get("text"), 3_000)
        else:
            problems.append(f"blocks[{i}]: unexpected type {kind!r}")
    return problems


def discord(body: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if not body.get("content") and not body.get("embeds"):
        problems.append("no content and no embeds")
    if "content" in body:
        _text(problems, "content", body["content"], 2_000, empty=True)
    embeds = body.get("embeds", [])
    if not isinstance(embeds, list) or len(embeds) > 10:
        return [*problems, "embeds: at most 10"]
    for i, e in enumerate(embeds):
        total = 0
        for key, limit in (("title", 256), ("description", 4_096)):
            if key in e:
                _text(problems, f"embeds[{i}].{key}", e[key], limit)
                total += len(e[key])
        fields = e.get("fields", [])
        if len(fields) > 25:
            problems.append(f"embeds[{i}].fields: at most 25")
        for j, f in enumerate(fields):
            _text(problems, f"embeds[{i}].fields[{j}].name", f.get("name"), 256)
            _text(problems, f"embeds[{i}].fields[{j}].value", f.get("value"), 1_024)
            total += len(f.get("name", "")) + len(f.get("value", ""))
        if "footer" in e:
            _text(problems, f"embeds[{i}].footer.text", e["footer"].get("text"), 2_048)
            total += len(e["footer"].get("text", ""))
        if total > 6_000:
            problems.append(f"embeds[{i}]: {total} > 6000 characters in all")
    return problems


def teams(body: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if body.get("type") != "message":
        problems.append('type: must be "message"')
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return [*problems, "attachments: exactly one card"]
    card = attachments[0]
    if card.get("contentType") != "application/vnd.microsoft.card.adaptive":
        problems.append("attachments[0].contentType")
    content = card.get("content", {})
    if content.get("type") != "AdaptiveCard" or not content.get("version"):
        problems.append("attachments[0].content: an AdaptiveCard with a version")
    for i, element in enumerate(content.get("body", [])):
        kind = element.get("type")
        if kind == "TextBlock":
            _text(problems, f"body[{i}].text", element.get("text"), 100_000)
        elif kind == "FactSet":
            for j, fact in enumerate(element.get("facts", [])):
                _text(problems, f"body[{i}].facts[{j}].title", fact.get("title"), 10_000)
                _text(problems, f"body[{i}].facts[{j}].value", fact.get("value"), 10_000)
        else:
            problems.append(f"body[{i}]: unexpected element {kind!r}")
    return problems


CHECKERS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "slack": slack,
    "discord": discord,
    "teams": teams,
}


def check(service: str, raw: bytes) -> list[str]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ["not JSON"]
    if not isinstance(body, dict):
        return ["not a JSON object"]
    if len(raw) > 28_000 and service == "teams":
        return ["over 28 KB"]
    return CHECKERS[service](body)
