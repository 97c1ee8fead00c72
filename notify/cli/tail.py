"""`notify tail`: follow a pattern from Redis directly."""

from __future__ import annotations

import sys

from notify.channels import PatternIndex, validate_pattern
from notify.events import with_id
from notify.redis.eventlog import RedisEventLog, Retention, connect
from notify.settings import Settings


async def tail(settings: Settings, pattern: str, after: str | None, count: int | None) -> None:
    validate_pattern(pattern, field="PATTERN")
    index: PatternIndex[str] = PatternIndex()
    index.add(pattern, pattern)
    seen = 0
    async with connect(settings.redis_url, block_ms=5000) as client:
        log = RedisEventLog(
            client,
            Retention(
                settings.history_seconds,
                settings.history_max_events,
                settings.channel_history_max_events,
            ),
        )
        cursor = await log.head()
        if after is not None:
            while True:
                page = await log.history([pattern], after, 500, until=cursor)
                for e in page.entries:
                    sys.stdout.write(with_id(e.id, e.body).decode() + "\n")
                    seen += 1
                    if count is not None and seen >= count:
                        return
                if page.next is None:
                    break
                after = page.next
            sys.stdout.flush()
        while True:
            page = await log.tail(cursor, 1000, 5000)
            cursor = page.next or cursor
            for e in page.entries:
                if next(index.match(e.channel), None) is not None:
                    sys.stdout.write(with_id(e.id, e.body).decode() + "\n")
                    seen += 1
                    if count is not None and seen >= count:
                        sys.stdout.flush()
                        return
            sys.stdout.flush()
