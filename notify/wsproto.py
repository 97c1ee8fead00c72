"""WebSocket messages of notify (pure): parsing client frames, building replies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from notify import shards
from notify.channels import validate_pattern
from notify.errors import InvalidCursor, InvalidInput
from notify.events import loads

OPS = ("subscribe", "unsubscribe", "publish", "ping")
MAX_CHANNELS = 100
MAX_REF = 64


@dataclass(frozen=True, slots=True)
class Frame:
    op: str
    ref: str | int | None
    body: dict[str, Any]


def parse(text: str | bytes) -> Frame:
    value = loads(text, "frame")
    if not isinstance(value, dict):
        raise InvalidInput("frame must be a JSON object", field="frame")
    ref = value.get("ref")
    if ref is not None and not (
        (isinstance(ref, str) and len(ref) <= MAX_REF)
        or (isinstance(ref, int) and not isinstance(ref, bool))
    ):
        raise InvalidInput(f"ref must be a string of at most {MAX_REF} characters", field="ref")
    op = value.get("op")
    if op not in OPS:
        raise WithRef(
            ref, InvalidInput(f"unknown op {op!r}; use one of {', '.join(OPS)}", field="op")
        )
    return Frame(op=op, ref=ref, body=value)


class WithRef(Exception):
    """An error that knows which request it answers."""

    def __init__(self, ref: str | int | None, error: Exception) -> None:
        super().__init__(str(error))
        self.ref = ref
        self.error = error


def channels(frame: Frame) -> list[str]:
    raw = frame.body.get("channels")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_CHANNELS:
        raise InvalidInput(
            f"channels must be a list of 1-{MAX_CHANNELS} patterns", field="channels"
        )
    return [validate_pattern(c, field=f"channels[{i}]") for i, c in enumerate(raw)]


def cursor(frame: Frame) -> str | None:
    value = frame.body.get("last_event_id")
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidCursor("last_event_id must be a string", field="last_event_id")
    return shards.check(value, "last_event_id")


def ok(ref: str | int | None, **extra: Any) -> str:
    return orjson.dumps({"op": "ok", "ref": ref, **extra}).decode()


def pong(ref: str | int | None) -> str:
    return orjson.dumps({"op": "pong", "ref": ref}).decode()


def error(
    ref: str | int | None,
    status: int,
    detail: str,
    field: str | None = None,
    position: str | None = None,
) -> str:
    body: dict[str, Any] = {"op": "error", "ref": ref, "status": status, "detail": detail}
    if position is not None:  # where to subscribe again from
        body["position"] = position
    if field is not None:
        body["field"] = field
    return orjson.dumps(body).decode()


def gap(reason: str) -> str:
    return orjson.dumps({"op": "gap", "reason": reason}).decode()


def event(envelope: bytes) -> str:
    return '{"op":"event","event":' + envelope.decode() + "}"
