"""What is waiting, read from Redis for ``/metrics``: the dispatchers' backlog and the
retry set. These are properties of the whole deployment, not of one process, so every
gateway reports the same values; aggregate them with ``max``, never ``sum``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from notify import keys
from notify.redis.eventlog import translated


@dataclass(frozen=True, slots=True)
class Backlog:
    dispatch_lag: int | None  # log entries not yet read by the dispatchers (None: no group)
    dispatch_pending: int  # read by a dispatcher, not yet acknowledged
    dispatch_oldest_pending_seconds: float  # age of the oldest of those (0 when none)
    retry_due: int  # deliveries waiting for a later attempt
    retry_overdue_seconds: float  # how late the most overdue of them is (0 when none)


async def read_backlog(
    client: aioredis.Redis, now: float | None = None, shards: int = 1
) -> Backlog:
    """The backlog over every shard's log: lag and pending summed, the oldest pending
    entry of any shard."""
    now_ms = (time.time() if now is None else now) * 1000
    with translated():
        pipe = client.pipeline(transaction=False)
        pipe.zcard(keys.RETRY_DUE)
        pipe.zrange(keys.RETRY_DUE, 0, 0, withscores=True)
        retry_due, first_due = await pipe.execute()
        lag: int | None = None
        pending = 0
        oldest = 0.0
        for shard in keys.all_shards(shards):
            if not await client.exists(shard.log):
                continue
            groups: list[dict[Any, Any]] = await client.xinfo_groups(shard.log)
            for group in groups:
                if _text(group.get("name", group.get(b"name", b""))) == keys.DISPATCH_GROUP:
                    raw_lag = group.get("lag", group.get(b"lag"))
                    if raw_lag is not None:
                        lag = (lag or 0) + int(raw_lag)
                    summary = await client.xpending(shard.log, keys.DISPATCH_GROUP)
                    pending += int(summary["pending"])
                    if summary["pending"] and summary["min"]:
                        oldest_ms = int(_text(summary["min"]).split("-")[0])
                        oldest = max(oldest, (now_ms - oldest_ms) / 1000)
    overdue = max(0.0, (now_ms - first_due[0][1]) / 1000) if first_due else 0.0
    return Backlog(lag, pending, oldest, int(retry_due), overdue)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
