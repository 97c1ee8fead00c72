"""Concurrent publishes share one append.

Each append is one Lua call; under load most of a publish's cost is the Redis client's
per-call work, not Redis. Requests that arrive while an append is in flight wait for
it to finish and then go out together in the next one, so the batch grows with the
load and a lone request waits for nothing. The combined call is atomic, so every
request is still stored whole or not at all (a failure fails every request of the
group, each with the same error). Requests with an idempotency key go alone: their
key guards exactly their own events.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from notify.eventlog import EventLog
from notify.events import EventDraft

Pairs = list[tuple[str, str]]
Waiting = tuple[Sequence[EventDraft], int, "asyncio.Future[Pairs]"]
"""A request's drafts, their encoded size and the future its answer goes to."""


class AppendBatcher:
    def __init__(
        self, log: EventLog, max_events: int = 1000, max_bytes: int = 4 * 1024 * 1024
    ) -> None:
        self._log = log
        self._max = max_events
        self._max_bytes = max_bytes
        self._pending: deque[Waiting] = deque()
        self._running = False

    async def append(self, drafts: Sequence[EventDraft]) -> Pairs:
        fut: asyncio.Future[Pairs] = asyncio.get_running_loop().create_future()
        self._pending.append((drafts, sum(len(d.body) for d in drafts), fut))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._pending:
                group: list[Waiting] = []
                count = size = 0
                while self._pending:
                    drafts, more, _ = self._pending[0]
                    full = count + len(drafts) > self._max or size + more > self._max_bytes
                    if group and full:
                        break
                    group.append(self._pending.popleft())
                    count += len(drafts)
                    size += more
                await self._flush(group)
        finally:
            self._running = False

    async def _flush(self, group: list[Waiting]) -> None:
        drafts = [d for ds, _, _ in group for d in ds]
        try:
            pairs = await self._log.append(drafts)
        except Exception as exc:
            for _, _, fut in group:
                if not fut.done():
                    fut.set_exception(exc)
            return
        start = 0
        for ds, _, fut in group:
            if not fut.done():
                fut.set_result(pairs[start : start + len(ds)])
            start += len(ds)
