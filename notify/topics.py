"""Topics: the admin's catalogue of what users may subscribe to (pure).

A topic names a channel pattern, optionally with ``{user}`` standing for the subscriber's
``sub`` (``user.{user}.orders``), the event types it carries and the sinks it offers.
The preference page shows each topic a user may read with a toggle per sink; a toggle
creates or deletes an ordinary subscription, so topics add no delivery path of their own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from notify.channels import validate_pattern
from notify.errors import InvalidInput
from notify.subscriptions import KINDS, validate_types

USER = "{user}"
FIELDS = frozenset({"title", "description", "channel", "types", "sinks"})
MAX_TITLE = 200
MAX_DESCRIPTION = 2000
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class Topic:
    id: str
    title: str
    description: str
    channel: str  # a pattern, possibly with {user}
    types: tuple[str, ...] | None
    sinks: tuple[str, ...]

    def channel_for(self, sub: str) -> str:
        """The pattern this topic means for the user ``sub``."""
        return self.channel.replace(USER, sub)

    def public(self, sub: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "channel": self.channel if sub is None else self.channel_for(sub),
            "template": self.channel,
            "sinks": list(self.sinks),
        }
        if self.types is not None:
            body["types"] = list(self.types)
        return body

    def dumps(self) -> bytes:
        return orjson.dumps(self.public())

    @classmethod
    def loads(cls, raw: bytes | str) -> Topic:
        value = orjson.loads(raw)
        types = value.get("types")
        return cls(
            id=value["id"],
            title=value["title"],
            description=value["description"],
            channel=value["template"],
            types=tuple(types) if types is not None else None,
            sinks=tuple(value["sinks"]),
        )


def validate_id(raw: str) -> str:
    if not _ID.fullmatch(raw):
        raise InvalidInput("topic id must be 1-64 characters of [A-Za-z0-9_-]", field="id")
    return raw


def _text(raw: Mapping[str, Any], name: str, limit: int, *, required: bool) -> str:
    value = raw.get(name, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        need = "a non-empty string" if required else "a string"
        raise InvalidInput(f"{name} must be {need} of at most {limit} characters", field=name)
    return value


def validate_template(raw: object) -> str:
    """A channel pattern in which ``{user}`` may stand for the subscriber's id."""
    if not isinstance(raw, str) or not raw:
        raise InvalidInput("channel must be a channel pattern", field="channel")
    # checked with a stand-in user id of the longest allowed length, so that every
    # real user's pattern is valid too
    validate_pattern(raw.replace(USER, "u" * 64) if USER in raw else raw, field="channel")
    if "{" in raw.replace(USER, "") or "}" in raw.replace(USER, ""):
        raise InvalidInput("the only placeholder a channel may hold is {user}", field="channel")
    return raw


def validate_sinks(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(k, str) for k in raw):
        raise InvalidInput(f"sinks must be a non-empty list of {', '.join(KINDS)}", field="sinks")
    for i, kind in enumerate(raw):
        if kind not in KINDS:
            raise InvalidInput(
                f"unknown sink {kind!r}; use {', '.join(KINDS)}", field=f"sinks[{i}]"
            )
    if len(set(raw)) != len(raw):
        raise InvalidInput("sinks must not repeat a kind", field="sinks")
    return tuple(raw)


def parse_topic(topic_id: str, raw: object) -> Topic:
    if not isinstance(raw, Mapping):
        raise InvalidInput("body must be a JSON object", field="body")
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
    types = raw.get("types")
    return Topic(
        id=validate_id(topic_id),
        title=_text(raw, "title", MAX_TITLE, required=True),
        description=_text(raw, "description", MAX_DESCRIPTION, required=False),
        channel=validate_template(raw.get("channel")),
        types=validate_types(types) if types is not None else None,
        sinks=validate_sinks(raw.get("sinks")),
    )
