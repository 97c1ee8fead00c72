"""Server-Sent Events wire format (pure, exact bytes)."""

from __future__ import annotations

import orjson

RETRY_MS = 3000
KEEPALIVE = b": keepalive\n\n"


def position_frame(position: str) -> bytes:
    """A stream's first frame: the reconnect delay and where the stream starts.

    An ``id:`` line without ``data:`` fires no event in a browser but sets its last
    event id, so a client cut before its first event resumes from here. (Some clients,
    e.g. ``httpx-sse``, yield an empty message for it: a block with no data.)
    """
    return b"retry: %d\nid: %s\n\n" % (RETRY_MS, position.encode())


def event_frame(event_id: str, envelope: bytes) -> bytes:
    """An ordinary event: no ``event:`` line, so ``EventSource.onmessage`` gets it.

    ``envelope`` is compact JSON on one line (orjson never emits newlines).
    """
    return b"id: " + event_id.encode() + b"\ndata: " + envelope + b"\n\n"


def control_frame(name: str, data: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def gap_frame(reason: str = "history_expired") -> bytes:
    return control_frame("gap", {"reason": reason})


CONTINUE_RETRY_MS = 100


def continue_frame(position: str) -> bytes:
    """The end of a stream whose catch-up spent its budget: where to resume from,
    and a short reconnect delay so the browser comes back for the rest at once (the
    next stream's first frame sets the usual delay again)."""
    return b"retry: %d\nid: %s\n\n" % (CONTINUE_RETRY_MS, position.encode())
