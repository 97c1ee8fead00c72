"""Server-Sent Events wire format (pure, exact bytes)."""

from __future__ import annotations

import orjson

RETRY_MS = 3000
PREAMBLE = b"retry: %d\n\n" % RETRY_MS
KEEPALIVE = b": keepalive\n\n"


def event_frame(event_id: str, envelope: bytes) -> bytes:
    """An ordinary event: no ``event:`` line, so ``EventSource.onmessage`` gets it.

    ``envelope`` is compact JSON on one line (orjson never emits newlines).
    """
    return b"id: " + event_id.encode() + b"\ndata: " + envelope + b"\n\n"


def control_frame(name: str, data: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def gap_frame(reason: str = "history_expired") -> bytes:
    return control_frame("gap", {"reason": reason})
