"""WebSocket server frames (RFC 6455, section 5.2), pure and exact bytes.

A server's frames are never masked, so a text frame carrying an event is the same
bytes for every connection it goes to: the hub builds it once per event and writes
it to each subscriber as it is (a batch of them in one transport write).
Compression (permessage-deflate) is per message: a frame without RSV1 is plain text
even on a connection that negotiated it, so these frames need no per-connection work.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

TEXT = 0x81
"""FIN set, no RSV bits, opcode 1 (text): one whole message per frame."""

_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")
EVENT_HEAD = b'{"op":"event","event":'


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented text frame; ``payload`` must be UTF-8."""
    n = len(payload)
    if n < 126:
        return _SHORT.pack(TEXT, n) + payload
    if n < 65536:
        return _MEDIUM.pack(TEXT, 126, n) + payload
    return _LONG.pack(TEXT, 127, n) + payload


def event_frame(envelope: bytes, cursor: str | None = None) -> bytes:
    """``{"op":"event","event":<envelope>}`` as a text frame; over a sharded log, with
    the stream's position after it: ``{"op":"event","event":...,"cursor":"..."}``."""
    if cursor is None:
        return text_frame(EVENT_HEAD + envelope + b"}")
    return text_frame(EVENT_HEAD + envelope + b',"cursor":"' + cursor.encode() + b'"}')


def payloads(data: bytes) -> Iterator[bytes]:
    """The payloads of consecutive frames built by :func:`text_frame` (its inverse),
    for a connection that can only send messages, not bytes."""
    at, end = 0, len(data)
    while at < end:
        n = data[at + 1] & 0x7F
        if n == 126:
            n, at = _MEDIUM.unpack_from(data, at)[2], at + 4
        elif n == 127:
            n, at = _LONG.unpack_from(data, at)[2], at + 10
        else:
            at += 2
        yield data[at : at + n]
        at += n
