"""The Redis adapter for subscriptions, their change feed and replay requests.

Subscriptions live as JSON in one hash; every write also appends to a change stream
(``op`` put/del, ``id``, ``user``, ``kind``) that dispatchers and open feeds tail to
stay current without polling the hash. Writes are compare-and-set scripts, so a
receiver's 410 disabling a subscription never loses a concurrent PATCH or vice versa.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio as aioredis

from notify import keys
from notify.errors import Conflict, NotFound
from notify.events import now_rfc3339, parse_id
from notify.redis import scripts
from notify.redis.errors import translating
from notify.subscriptions import NewSubscription, Secret, Subscription, new_id

CHANGES_MAXLEN = 100_000
REPLAYS_MAXLEN = 10_000
_CAS_TRIES = 8


def text(value: Any) -> str:
    """A reply value as str, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class Change:
    id: str  # change stream id
    op: str  # "put" or "del"
    subscription: str
    user: str
    kind: str


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    id: str
    subscription: str
    after: str
    until: str


@translating
class SubscriptionStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._cas = redis.register_script(scripts.source("subscription_cas"))

    async def _swap(
        self, sub: Subscription, old: bytes | str, new: bytes | str, limit: int = 0
    ) -> bool:
        done = int(
            await self._cas(
                keys=[
                    keys.SUBSCRIPTIONS,
                    keys.user_subscriptions(sub.user),
                    keys.SUBSCRIPTION_CHANGES,
                ],
                args=[sub.id, old, new, sub.user, sub.kind, CHANGES_MAXLEN, limit],
            )
        )
        if done < 0:
            raise Conflict(f"a user may have at most {limit} subscriptions")
        return done == 1

    async def server_ms(self) -> int:
        seconds, micros = await self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def create(
        self, draft: NewSubscription, user: str, *, limit: int, secret: str | None
    ) -> Subscription:
        if await self._redis.scard(keys.user_subscriptions(user)) >= limit:
            raise Conflict(f"a user may have at most {limit} subscriptions")
        now = now_rfc3339()
        sub = Subscription(
            id=new_id(),
            user=user,
            channel=draft.channel,
            types=draft.types,
            sink=draft.sink,
            # Redis time, the clock event ids come from: an event published after the
            # creation returns is routed to it, an older one is not
            since_ms=await self.server_ms(),
            created_at=now,
            updated_at=now,
            secrets=(Secret(secret),) if secret else (),
        )
        # the limit is checked again in the same Lua call that adds, so concurrent
        # creations cannot overshoot it
        if not await self._swap(sub, "", sub.dumps(), limit):
            raise Conflict("subscription id collision; try again")
        return sub

    async def get(self, subscription_id: str) -> Subscription | None:
        raw = await self._redis.hget(keys.SUBSCRIPTIONS, subscription_id)
        return Subscription.loads(raw) if raw else None

    async def get_many(self, ids: list[str]) -> dict[str, Subscription]:
        if not ids:
            return {}
        raws = await self._redis.hmget(keys.SUBSCRIPTIONS, ids)
        return {i: Subscription.loads(r) for i, r in zip(ids, raws, strict=True) if r}

    async def for_user(self, user: str) -> list[Subscription]:
        ids = sorted(text(i) for i in await self._redis.smembers(keys.user_subscriptions(user)))
        found = await self.get_many(ids)
        return sorted(found.values(), key=lambda s: (s.created_at, s.id))

    async def web_subscriptions(self, user: str) -> list[Subscription]:
        """The enabled ``web`` subscriptions that make up the user's ``/v1/feed``."""
        return [s for s in await self.for_user(user) if s.kind == "web" and s.enabled]

    async def all(self) -> AsyncIterator[Subscription]:
        async for _, raw in self._redis.hscan_iter(keys.SUBSCRIPTIONS, count=500):
            yield Subscription.loads(raw)

    async def update(
        self, subscription_id: str, change: Callable[[Subscription], Subscription]
    ) -> Subscription:
        """Apply ``change`` to the current version, retrying when another writer won."""
        for _ in range(_CAS_TRIES):
            raw = await self._redis.hget(keys.SUBSCRIPTIONS, subscription_id)
            if raw is None:
                raise NotFound("no such subscription")
            current = Subscription.loads(raw)
            new = replace(change(current), updated_at=now_rfc3339())
            if await self._swap(new, raw, new.dumps()):
                return new
        raise Conflict("the subscription is being changed concurrently; try again")

    async def delete(self, subscription_id: str) -> Subscription:
        for _ in range(_CAS_TRIES):
            raw = await self._redis.hget(keys.SUBSCRIPTIONS, subscription_id)
            if raw is None:
                raise NotFound("no such subscription")
            current = Subscription.loads(raw)
            if await self._swap(current, raw, ""):
                await self._redis.delete(keys.subscription_deliveries(subscription_id))
                return current
        raise Conflict("the subscription is being changed concurrently; try again")

    async def disable(self, subscription_id: str, reason: str) -> None:
        def off(sub: Subscription) -> Subscription:
            return replace(sub, enabled=False, disabled_reason=reason)

        with contextlib.suppress(NotFound):
            await self.update(subscription_id, off)

    async def changes_head(self) -> str:
        last = await self._redis.xrevrange(keys.SUBSCRIPTION_CHANGES, count=1)
        return text(last[0][0]) if last else "0-0"

    async def changes(
        self, after: str, count: int = 1000, block_ms: int | None = None
    ) -> list[Change]:
        reply: Any = await self._redis.xread(
            {keys.SUBSCRIPTION_CHANGES: after}, count=count, block=block_ms
        )
        out: list[Change] = []
        for _, entries in reply or []:
            for entry_id, fields in entries:
                f = {text(k): text(v) for k, v in fields.items()}
                out.append(
                    Change(text(entry_id), f["op"], f["id"], f.get("user", ""), f.get("kind", ""))
                )
        return out

    async def request_replay(
        self, subscription_id: str, after: str, shards: int = 1
    ) -> ReplayRequest:
        """Queue a replay of what the log holds after ``after`` up to its head now
        (the latest id of any shard: ids are times, so it bounds every shard)."""
        heads = ["0-0"]
        for shard in keys.all_shards(shards):
            last = await self._redis.xrevrange(shard.log, count=1)
            if last:
                heads.append(text(last[0][0]))
        until = max(heads, key=parse_id)
        entry = await self._redis.xadd(
            keys.REPLAYS,
            {"sub": subscription_id, "after": after, "until": until},
            maxlen=REPLAYS_MAXLEN,
            approximate=True,
        )
        return ReplayRequest(text(entry), subscription_id, after, until)


def replay_from_fields(entry_id: bytes | str, fields: dict[Any, Any]) -> ReplayRequest:
    f = {text(k): text(v) for k, v in fields.items()}
    return ReplayRequest(text(entry_id), f["sub"], f["after"], f["until"])
