"""Sharding the event log (pure): which shard a channel lives on, the hash tag that
puts each shard in its own Redis Cluster slot, and the cursor that covers every shard.

With ``NOTIFY_SHARDS=1`` (the default) there is one log under the hash tag ``{n}``,
an event's id is its position, and nothing here changes a key or a cursor.

With N shards, each channel belongs to one shard (CRC-32 of its name, modulo N), and
each shard has its own log, channel streams and idempotency records under its own
hash tag, chosen so that shard ``s`` falls in the ``s``-th N-th of the slot space:
on a cluster created with slots split evenly over N primaries (what
``redis-cli --cluster create`` does), each shard lands on its own primary.
Everything else (subscriptions, deliveries, limits) stays under ``{n}``.

Event ids stay Redis stream ids and stay unique across shards: shard ``s`` only
gives out sequence numbers congruent to ``s`` modulo N (the append script picks
them). A stream's position is then one id per shard, written as a cursor::

    ~<ms>[-<seq>].<ms>[-<seq>]...      (base 36, one token per shard, empty for none)

The cursor is opaque to clients (SPEC section 3: it may differ from an event id). A
plain event id given where a cursor is expected is read as that point on every
shard: exact for its own shard, a point in time for the others.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import TypeVar

from notify.errors import InvalidCursor
from notify.events import parse_id

SLOTS = 16384
MAX_SHARDS = 64
BASE_TAG = "n"
CURSOR_MARK = "~"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_MAX_TOKEN = 27
"""Longest token: two 64-bit numbers in base 36 (13 digits each) and a dash."""

Position = tuple[int, int]
Vector = tuple[Position, ...]
T = TypeVar("T")


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM, Redis Cluster's key hash."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot(tag: str) -> int:
    return crc16(tag.encode()) % SLOTS


def tag(shard: int, count: int) -> str:
    """The hash tag of ``shard`` (of ``count``): ``n`` for a single shard, else the
    first ``n.<shard>.<k>`` whose slot lies in the shard's part of the slot space."""
    if count == 1:
        return BASE_TAG
    low, high = shard * SLOTS // count, (shard + 1) * SLOTS // count
    k = 0
    while True:
        candidate = f"{BASE_TAG}.{shard}.{k}"
        if low <= slot(candidate) < high:
            return candidate
        k += 1


def shard_of(channel: str, count: int) -> int:
    """The shard a channel's events live on."""
    if count == 1:
        return 0
    return zlib.crc32(channel.encode()) % count


def split(channels: Sequence[str], count: int) -> dict[int, list[int]]:
    """The indexes of ``channels`` grouped by shard, each group in its original order."""
    groups: dict[int, list[int]] = {}
    for i, channel in enumerate(channels):
        groups.setdefault(shard_of(channel, count), []).append(i)
    return groups


def merge(parts: dict[int, list[T]], groups: dict[int, list[int]], total: int) -> list[T]:
    """Put per-shard answers back in the order :func:`split` took them from."""
    out: list[T | None] = [None] * total
    for shard, indexes in groups.items():
        for i, value in zip(indexes, parts[shard], strict=True):
            out[i] = value
    return [v for v in out if v is not None]


def _b36(n: int) -> str:
    if n == 0:
        return "0"
    digits = []
    while n:
        n, r = divmod(n, 36)
        digits.append(_DIGITS[r])
    return "".join(reversed(digits))


def token(position: Position) -> str:
    ms, seq = position
    if position == (0, 0):
        return ""
    return _b36(ms) if seq == 0 else f"{_b36(ms)}-{_b36(seq)}"


def id_text(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


_TOKEN_RE = re.compile(r"(?:[0-9a-z]{1,13}(?:-[0-9a-z]{1,13})?)?")
MAX_CURSOR = 1 + MAX_SHARDS * (_MAX_TOKEN + 1)
"""The longest cursor any store gives out (the length limit of a cursor parameter)."""


def check(value: str, field: str) -> str:
    """``value`` if it is an event id or a cursor by its form (InvalidCursor names
    ``field`` otherwise). Whether it fits this store's shards is the log's to say."""
    if not value.startswith(CURSOR_MARK):
        parse_id(value, field=field)
        return value
    tokens = value[1:].split(".")
    if len(tokens) > MAX_SHARDS or not all(_TOKEN_RE.fullmatch(t) for t in tokens):
        raise InvalidCursor(f"{value[:64]!r} is not a cursor", field=field)
    return value


class Positions:
    """Reads, writes and compares the positions of a log of ``count`` shards. With one
    shard a position is an event id, as it always was."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        if not 1 <= count <= MAX_SHARDS:
            raise ValueError(f"shards must be between 1 and {MAX_SHARDS}")
        self.count = count

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def max_length(self) -> int:
        return 64 if self.count == 1 else 1 + self.count * (_MAX_TOKEN + 1)

    def parse(self, value: object, field: str = "last_event_id") -> Vector:
        """A position given by a client; InvalidCursor (400) names ``field``."""
        if isinstance(value, str) and value.startswith(CURSOR_MARK):
            if self.count == 1:
                raise InvalidCursor(
                    f"{value[:64]!r} is a cursor of a sharded store; this one has one shard",
                    field=field,
                )
            tokens = value[1:].split(".")
            if len(tokens) != self.count:
                raise InvalidCursor(
                    f"the cursor covers {len(tokens)} shards; the store has {self.count}",
                    field=field,
                )
            return tuple(self._token(t, value, field) for t in tokens)
        at = parse_id(value, field=field)
        return (at,) * self.count

    def _token(self, text: str, value: str, field: str) -> Position:
        if not _TOKEN_RE.fullmatch(text):
            raise InvalidCursor(f"{value[:64]!r} is not a cursor", field=field)
        if not text:
            return (0, 0)
        ms, dash, seq = text.partition("-")
        position = (int(ms, 36), int(seq, 36) if dash else 0)
        if position[0] >= 1 << 64 or position[1] >= 1 << 64:
            raise InvalidCursor(f"{value[:64]!r} is out of range", field=field)
        return position

    def encode(self, vector: Sequence[Position]) -> str:
        if self.count == 1:
            return id_text(vector[0])
        return CURSOR_MARK + ".".join(token(p) for p in vector)

    def check(self, value: object, field: str) -> str:
        """``value`` if it is a position of this store (InvalidCursor otherwise)."""
        self.parse(value, field)
        assert isinstance(value, str)
        return value

    def behind(self, a: str, b: str) -> bool:
        """Whether position ``a`` misses anything that ``b`` has seen on some shard."""
        return any(x < y for x, y in zip(self.parse(a), self.parse(b), strict=True))

    def covers(self, a: Vector, b: Vector) -> bool:
        """Whether ``a`` is at or past ``b`` on every shard."""
        return all(x >= y for x, y in zip(a, b, strict=True))


__all__ = ["Positions", "check", "merge", "shard_of", "slot", "split", "tag"]
