"""The Redis adapter for delivery records, their attempts, the due set and target rates.

Every pending delivery sits in the due set (``keys.RETRY_DUE``) scored by when some
process should next look at it: when its task is sent to the broker (now + the
heartbeat TTL: by then a worker has received the task and reserves it, pushing it ahead
while that worker lives), when a worker claims it (now + the TTL, pushed ahead by every
beat of the claiming process, so it falls due within a TTL of that process's death),
and when an attempt fails (the retry time). The sweeper re-enqueues what falls due, so
the broker never holds a delay and no crash strands a delivery; a record whose task
is still queued behind others is left to the broker (delivery_sweep tells it from a
task lost on its way, by the mark workers move as they receive tasks). All times come from
the Redis clock (``TIME`` inside the scripts), so workers' clocks need not agree.

The scripts are ``lua/delivery_*.lua``; the record's layout and how one is created,
restarted and ended are written once, in ``lua/prelude.lua``, which the digests'
scripts (notify.redis.digests) share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from notify import keys
from notify.redis import scripts
from notify.redis.errors import translating
from notify.redis.subscriptions import text
from notify.retry import as_datetime
from notify.routing import Delivery

MAX_ATTEMPTS_KEPT = 50

# the heartbeats' scripts (notify.redis.heartbeat): they renew the leases of this ledger's
# records (delivery_renew) and keep reserved ones falling due a TTL ahead (delivery_reserve)
RENEW = scripts.source("delivery_renew")
RESERVE = scripts.source("delivery_reserve")


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    subscription: str
    user: str
    kind: str
    event_id: str
    body: bytes
    attempts_before: int


@dataclass(frozen=True, slots=True)
class Finish:
    id: str
    outcome: str  # delivered | retry | failed | deferred
    attempt: dict[str, Any] | None
    delay_s: float = 0.0


@translating
class Ledger:
    """``hold_s`` is how long a claim holds unless the claiming process's heartbeat
    renews it (notify.redis.heartbeat), and how long a record sent to the broker waits
    for a worker to receive its task before the sweeper looks at it; ``lease_s`` how long
    at most before the sweeper sends it again, even if the broker seems not to have
    handed out anything sent after it (delivery_sweep). By default both are the lease."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        lease_s: float,
        retention_s: int,
        hold_s: float | None = None,
    ) -> None:
        self._redis = redis
        self._lease_ms = int(lease_s * 1000)
        self._hold_ms = int((lease_s if hold_s is None else hold_s) * 1000)
        self._retention_s = retention_s
        self._create = redis.register_script(scripts.source("delivery_create"))
        self._claim = redis.register_script(scripts.source("delivery_claim"))
        self._finish = redis.register_script(scripts.source("delivery_finish"))
        self._retry = redis.register_script(scripts.source("delivery_retry"))
        self._sweep = redis.register_script(scripts.source("delivery_sweep"))
        self._due = redis.register_script(scripts.source("due_now"))
        self._rate = redis.register_script(scripts.source("target_rate"))

    async def create(
        self,
        items: Sequence[tuple[Delivery, str, str, bytes]],
        *,
        replay: bool = False,
    ) -> list[str]:
        """Create-if-absent one record per (delivery, channel, type, envelope); return the
        ids that need a task (new, reset by a replay, or still pending)."""
        if not items:
            return []
        try:
            results = await self._create_all(items, replay)
        except NoScriptError:
            # Redis Cluster: a pipeline does not load its scripts first (and a promoted
            # replica never had them); creating is create-if-absent, so run it again
            await self._redis.script_load(self._create.script)
            results = await self._create_all(items, replay)
        return [item[0].id for item, r in zip(items, results, strict=True) if int(r) in (1, 2)]

    async def _create_all(
        self, items: Sequence[tuple[Delivery, str, str, bytes]], replay: bool
    ) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for d, channel, type_, body in items:
            await self._create(
                keys=[
                    keys.delivery(d.id),
                    keys.delivery_attempts(d.id),
                    keys.subscription_deliveries(d.subscription),
                    keys.RETRY_DUE,
                ],
                args=[
                    d.id, d.subscription, d.user, d.kind, d.event_id, channel, type_, body,
                    self._hold_ms, self._retention_s * 1000, "1" if replay else "0",
                ],
                client=pipe,
            )  # fmt: skip
        results: list[Any] = await pipe.execute()
        return results

    async def claim(self, ids: Sequence[str], token: str) -> list[Claimed]:
        """Lease every id that is pending, due and not leased elsewhere (one round trip)."""
        if not ids:
            return []
        replies = await self._claim(
            keys=[keys.RETRY_DUE, *(keys.delivery(i) for i in ids)],
            args=[self._hold_ms, token, *ids],
        )
        out: list[Claimed] = []
        for i, r in zip(ids, replies, strict=True):
            if int(r[0]) == 1:
                sub, user, kind, event_id, body, count = r[1:]
                raw = body if isinstance(body, bytes) else str(body).encode()
                out.append(
                    Claimed(i, text(sub), text(user), text(kind), text(event_id), raw, int(count))
                )
        return out

    async def finish(
        self,
        token: str,
        results: Sequence[Finish],
        metrics: dict[str, int] | None = None,
        owners: Mapping[str, str] | None = None,
    ) -> None:
        """Record outcomes and attempts, and count ``metrics`` (one round trip);
        ``owners`` names each delivery's user, for the failure indexes."""
        owners = owners or {}
        counts = metrics or {}
        if not results and not counts:
            return
        keys_: list[str] = [keys.RETRY_DUE, keys.DELIVERY_METRICS, keys.FAILED_DELIVERIES]
        args: list[bytes | str | int] = [token, self._retention_s, MAX_ATTEMPTS_KEPT, len(counts)]
        for name, n in counts.items():
            args += [name, n]
        for f in results:
            owner = keys.user_failed_deliveries(owners.get(f.id, ""))
            keys_ += [keys.delivery(f.id), keys.delivery_attempts(f.id), owner]
            entry = orjson.dumps(f.attempt) if f.attempt else ""
            args += [f.id, f.outcome, entry, int(f.delay_s * 1000)]
        await self._finish(keys=keys_, args=args)

    async def retry(self, delivery_id: str, user: str) -> bool:
        done = await self._retry(
            keys=[
                keys.delivery(delivery_id),
                keys.delivery_attempts(delivery_id),
                keys.RETRY_DUE,
                keys.FAILED_DELIVERIES,
                keys.user_failed_deliveries(user),
            ],
            args=[delivery_id],
        )
        return bool(done)

    async def sweep(self, count: int, queue: str | None = None) -> tuple[list[str], int]:
        """Take up to ``count`` due records: the ids to send again (those whose task was
        not merely held up in the broker's queue, see delivery_sweep) and how many were
        due. ``queue``: the key of a Redis broker's queue, whose being empty says that
        no due record's task is still in it."""
        due = [text(i) for i in await self._due(keys=[keys.RETRY_DUE], args=[count])]
        if not due:
            return [], 0
        marks = [keys.RETRY_DUE, keys.DELIVERIES_RECEIVED, queue or keys.DELIVERIES_RECEIVED]
        ids = await self._sweep(
            keys=[*marks, *(keys.delivery(i) for i in due)],
            args=[self._lease_ms, self._hold_ms, "1" if queue else "0", *due],
        )
        return [text(i) for i in ids], len(due)

    async def acquire(self, target: str, rate: float, wanted: int) -> tuple[int, float]:
        """Take up to ``wanted`` requests from the target's shared budget (bursts of
        twice the rate); return how many were granted and seconds until the next one."""
        granted, wait_ms = await self._rate(
            keys=[keys.target_rate(target)], args=[rate, max(2 * rate, 1), wanted]
        )
        return int(granted), int(wait_ms) / 1000

    async def get(self, delivery_id: str) -> dict[str, Any] | None:
        found = await self.get_many([delivery_id])
        return found[0] if found else None

    async def get_many(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        pipe = self._redis.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(keys.delivery(i))
            pipe.lrange(keys.delivery_attempts(i), 0, -1)
        replies = await pipe.execute()
        out = []
        for n in range(0, len(replies), 2):
            fields, attempts = replies[n], replies[n + 1]
            if fields:
                out.append(view({text(k): v for k, v in fields.items()}, attempts))
        return out

    async def page(
        self, subscription_id: str, *, before: tuple[int, str] | None, count: int
    ) -> list[tuple[int, str]]:
        """(created_ms, id) of a subscription's deliveries, newest first, after a cursor."""
        return await self.page_of(
            keys.subscription_deliveries(subscription_id), before=before, count=count
        )

    async def failures(
        self, user: str | None, *, before: tuple[int, str] | None, count: int
    ) -> list[tuple[int, str]]:
        """(failed_ms, id) of the deliveries that ended failed, newest first: one user's,
        or everyone's (``user`` None). Candidates: check each record's status."""
        key = keys.FAILED_DELIVERIES if user is None else keys.user_failed_deliveries(user)
        return await self.page_of(key, before=before, count=count)

    async def page_of(
        self, key: str, *, before: tuple[int, str] | None, count: int
    ) -> list[tuple[int, str]]:
        top: str | int = "+inf" if before is None else before[0]
        rows: Any = await self._redis.zrevrangebyscore(
            key,
            top,
            "-inf",
            start=0,
            num=count + 64,
            withscores=True,
        )
        out = []
        for member, score in rows:
            item = (int(score), text(member))
            # members that share the cursor's millisecond sort by id, descending
            if before is None or item < before:
                out.append(item)
        return out[:count]


def view(fields: dict[str, Any], attempts: Sequence[Any]) -> dict[str, Any]:
    """The API view of a stored delivery."""
    next_ms = fields.get("next_ms")
    status = text(fields["status"])
    return {
        "id": text(fields["id"]),
        "subscription": text(fields["subscription"]),
        "user": text(fields["user"]),
        "kind": text(fields["kind"]),
        "event_id": text(fields["event_id"]),
        "channel": text(fields["channel"]),
        "type": text(fields["type"]),
        "status": status,
        "attempts": [orjson.loads(a) for a in attempts],
        "next_attempt_at": iso(int(next_ms)) if next_ms and status == "pending" else None,
        "created_at": iso(int(fields["created_ms"])),
        "finished_at": iso(int(fields["done_ms"])) if fields.get("done_ms") else None,
    }


def iso(ms: int) -> str:
    return as_datetime(ms / 1000).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
