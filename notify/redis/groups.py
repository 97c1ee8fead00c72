"""Reading a stream as a consumer group: the dispatchers read the event log this way,
the replayers the replay requests.

Each process reads under its own consumer name and keeps a heartbeat
(``keys.alive``, see notify.redis.heartbeat) while it runs. Entries it read but has not
acknowledged stay pending under its name. When a consumer's heartbeat is gone (killed,
frozen, cut off), any other reader of the group takes its pending entries over at once,
so crashed work moves on within the heartbeat's TTL plus one check, not after an idle
timeout; a slow consumer whose heartbeat lives keeps its entries. Entries idle longer
than ``stale_s`` are taken whoever holds them, as a backstop (handling is idempotent).

A restarted process that reuses its name (pid 1 in a container) first reads what it
left pending itself. A group that is gone (Redis restarted without its data: NOGROUP)
is created again at the start of what the stream now holds, with one warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from notify import keys
from notify.redis.client import Client
from notify.redis.errors import refused
from notify.redis.subscriptions import text

log = logging.getLogger("notify.groups")

Entry = tuple[Any, Any]
"""(entry id, fields); fields are empty for an entry trimmed from the stream while pending."""

FORGET_IDLE_S = 600.0
"""A consumer with no heartbeat and nothing pending is removed from the group after this
long without reading: long enough that it cannot be a frozen process about to read again."""


def is_nogroup(exc: Exception) -> bool:
    """The group, or its whole stream, is gone (XINFO says "no such key" for the latter)."""
    if not isinstance(exc, ResponseError):
        return False
    return str(exc).startswith("NOGROUP") or "no such key" in str(exc)


def refused_for_good(exc: Exception) -> bool:
    """A command Redis refuses as such: no retry can carry it out (unlike a lack of
    memory, of a replica or of a loaded data set, or a lost connection)."""
    return refused(exc)


class GroupReader:
    def __init__(
        self,
        redis: Client,
        stream: str,
        group: str,
        consumer: str,
        *,
        stale_s: float,
        check_s: float = 1.0,
    ) -> None:
        self._redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self._stale_ms = int(stale_s * 1000)
        # a dead consumer's entries have been idle at least this long by the time its
        # heartbeat has lapsed; a second survivor's XCLAIM then finds them fresh and skips
        self._min_idle_ms = int(check_s * 1000)
        self._check_s = check_s
        self._next_check = 0.0
        self._next_stale = time.monotonic() + stale_s / 2
        self._own_pending = True
        self.taken_over = 0
        self.lost = 0  # reads that found the group gone (Redis lost its data)
        self.recreated = 0  # of those, the times this process created it again

    async def ensure(self) -> bool:
        """Create the group at the start of the stream (id 0) unless it exists; whether
        this call created it."""
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        return True

    async def read(self, count: int, block_ms: int) -> list[Entry]:
        """The next entries for this consumer: its own left-overs, then a dead consumer's,
        then new ones (blocking up to ``block_ms``)."""
        try:
            return await self._read(count, block_ms)
        except ResponseError as exc:
            if not is_nogroup(exc):
                raise
        created = await self.ensure()
        self.lost += 1
        self._own_pending = False
        if created:
            self.recreated += 1
            log.warning(
                "consumer group %r of %s was gone (Redis lost its data?): created it "
                "again, reading from the oldest entry left",
                self.group,
                self.stream,
            )
        else:  # another process was a moment faster: one of them says so
            log.info(
                "consumer group %r of %s was gone; created again elsewhere", self.group, self.stream
            )
        return await self._read(count, block_ms)

    async def ack(self, ids: Sequence[Any]) -> None:
        if ids:
            await self._redis.xack(self.stream, self.group, *ids)

    async def keep(self, entry_id: str) -> None:
        """Reset an entry's idle time: work on it goes on (beats the ``stale_s`` backstop)."""
        await self._redis.xclaim(self.stream, self.group, self.consumer, 0, [entry_id], justid=True)

    async def _read(self, count: int, block_ms: int) -> list[Entry]:
        if self._own_pending:
            mine = await self._xread("0", count, None)
            if mine:
                return mine
            self._own_pending = False
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self._check_s
            taken = await self.take_over(count)
            if taken:
                return taken
        if now >= self._next_stale:
            self._next_stale = now + self._stale_ms / 2000
            stale = await self._claim_stale(count)
            if stale:
                return stale
        return await self._xread(">", count, block_ms)

    async def _xread(self, start: str, count: int, block_ms: int | None) -> list[Entry]:
        reply: Any = await self._redis.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=count, block=block_ms
        )
        entries: list[Entry] = []
        for _, batch in reply or []:
            entries += batch
        return entries

    async def take_over(self, count: int) -> list[Entry]:
        """Claim the pending entries of consumers whose heartbeat is gone."""
        consumers: Any = await self._redis.xinfo_consumers(self.stream, self.group)
        others = [c for c in consumers if text(c["name"]) != self.consumer]
        if not others:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for c in others:
            pipe.exists(keys.alive(text(c["name"])))
        alive = await pipe.execute()
        taken: list[Entry] = []
        for c, living in zip(others, alive, strict=True):
            if living:
                continue
            name = text(c["name"])
            if not int(c["pending"]):
                if int(c["idle"]) > FORGET_IDLE_S * 1000:
                    await self._redis.xgroup_delconsumer(self.stream, self.group, name)
                continue
            rows: Any = await self._redis.xpending_range(
                self.stream, self.group, min="-", max="+", count=count, consumername=name
            )
            ids = [r["message_id"] for r in rows]
            claimed: Any = await self._redis.xclaim(
                self.stream, self.group, self.consumer, self._min_idle_ms, ids
            )
            got = [(i, f) for i, f in claimed if i is not None]
            if got:
                log.warning(
                    "took over %d pending entries of %s from %s, whose heartbeat stopped",
                    len(got),
                    self.stream,
                    name,
                )
            self.taken_over += len(got)
            taken += got
            if len(taken) >= count:
                break
        return taken

    async def _claim_stale(self, count: int) -> list[Entry]:
        reply: Any = await self._redis.xautoclaim(
            self.stream, self.group, self.consumer, self._stale_ms, start_id="0-0", count=count
        )
        taken = [(i, f) for i, f in reply[1] if i is not None]
        if taken:
            log.warning("took over %d entries of %s idle for too long", len(taken), self.stream)
        return taken
