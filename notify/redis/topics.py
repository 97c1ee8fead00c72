"""The Redis adapter for topics: one hash of topic JSON, small enough to read whole."""

from __future__ import annotations

import redis.asyncio as aioredis

from notify import keys
from notify.topics import Topic


class TopicStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def put(self, topic: Topic) -> bool:
        """Store ``topic``; True when it is new, False when it replaced one."""
        return bool(await self._redis.hset(keys.TOPICS, topic.id, topic.dumps()))

    async def get(self, topic_id: str) -> Topic | None:
        raw = await self._redis.hget(keys.TOPICS, topic_id)
        return Topic.loads(raw) if raw else None

    async def all(self) -> list[Topic]:
        raws = await self._redis.hvals(keys.TOPICS)
        return sorted((Topic.loads(r) for r in raws), key=lambda t: (t.title.lower(), t.id))

    async def delete(self, topic_id: str) -> bool:
        return bool(await self._redis.hdel(keys.TOPICS, topic_id))
