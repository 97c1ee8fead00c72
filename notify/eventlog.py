"""The event log port: what the gateway and producers need from the store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from notify.events import EventDraft


class Entry(NamedTuple):
    """One stored event as read back: its id, channel, type, origin and id-less body.

    Channel, type and origin are stored beside the body so readers route and filter
    without parsing JSON. (A named tuple: a reader builds one per event, and a tuple is
    several times cheaper to build than a frozen dataclass.)
    """

    id: str
    channel: str
    type: str
    origin: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[Entry]
    next: str | None
    gap: bool = False
    scanned: int = 0
    """Log entries read to make this page (the work it cost), matching or not."""
    cursors: list[str] | None = None
    """Over a sharded log: the stream position after each entry (a cursor covering
    every shard). None with one shard, where an entry's id is its position."""


class EventLog(Protocol):
    async def append(
        self, drafts: Sequence[EventDraft], *, idempotency_key: str | None = None
    ) -> list[tuple[str, str]]:
        """Store the drafts atomically; return (id, channel) per draft.

        With an idempotency key already used, returns the first call's answer and
        stores nothing.
        """
        ...

    async def history(
        self, patterns: Sequence[str], after: str | None, limit: int, until: str | None = None
    ) -> Page: ...

    async def position(self, patterns: Sequence[str], cursor: str) -> str | None: ...

    async def tail(
        self,
        after: str,
        count: int,
        block_ms: int,
        wanted: Callable[[bytes], bool] | None = None,
    ) -> Page:
        """Up to ``count`` entries after ``after``, waiting up to ``block_ms`` for the
        first. ``wanted``, given a stored channel name (UTF-8), says which entries to
        build at all (the rest are skipped unread); ``next`` is the id of the last entry
        read whether it was kept or not, None when nothing came."""
        ...

    async def head(self) -> str: ...

    async def normalize(self, cursor: str) -> str:
        """A client's cursor as a position of this log (see notify.shards: an event id
        given to a sharded log becomes a cursor); unchanged with one shard."""
        ...

    async def event(self, event_id: str) -> Entry | None:
        """One retained event by its id, or None when it is not (or no longer) kept."""
        ...

    async def aclose(self) -> None:
        """Close what the log opened for itself (a blocking reader's connection)."""
        ...
