"""`notify tail`: follow a pattern from Redis directly."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any

from notify.channels import PatternIndex, validate_pattern
from notify.events import with_id
from notify.redis.eventlog import Retention, connect, open_log, recorded_shards_async
from notify.settings import Settings, load

EARLIEST = "0-0"
"""Before every event: ``--after 0`` and ``--after earliest`` replay all history kept."""


def cursor_of(after: str | None) -> str | None:
    if after is not None and after.strip().lower() in ("0", "earliest"):
        return EARLIEST
    return after


def cmd_tail(args: argparse.Namespace) -> int:
    from notify.cli.producer import say_redis

    settings = load()
    say_redis("tail", settings)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail(settings, args.pattern, cursor_of(args.after), args.count))
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser(
        "tail", help="print events matching a pattern as they arrive (from NOTIFY_REDIS_URL)"
    )
    s.add_argument("pattern", help="e.g. orders.>")
    s.add_argument(
        "--after",
        metavar="ID",
        help="first replay the retained events after this id; 0 or 'earliest': all of them",
    )
    s.add_argument("--count", type=int, default=None, help="stop after this many events")
    s.set_defaults(func=cmd_tail)


async def tail(settings: Settings, pattern: str, after: str | None, count: int | None) -> None:
    validate_pattern(pattern, field="PATTERN")
    index: PatternIndex[str] = PatternIndex()
    index.add(pattern, pattern)
    seen = 0
    async with connect(settings.redis_url, block_ms=5000) as client:
        log = open_log(
            client,
            Retention(
                settings.history_seconds,
                settings.history_max_events,
                settings.channel_history_max_events,
            ),
            # the store's own count, as a producer follows it (NOTIFY_SHARDS not needed)
            await recorded_shards_async(client),
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
