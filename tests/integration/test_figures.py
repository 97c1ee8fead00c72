"""README figures that only a real Redis shows, written here as literals.

*Limits*: "`Idempotency-Key` 1-255 printable characters, kept 24 h per token subject."
"""

from __future__ import annotations

import redis

from notify import Publisher
from tests.support.redis import RedisServer


def test_an_idempotency_key_is_kept_24_hours(redis_server: RedisServer) -> None:
    with Publisher(redis_server.url) as producer:
        first = producer.publish("a", "t", 1, idempotency_key="k-1")
        assert producer.publish("a", "t", 2, idempotency_key="k-1") == first
    client = redis.Redis.from_url(redis_server.url)
    try:
        [key] = client.keys("*idem:*")
        assert 86400 - 5 <= client.ttl(key) <= 86400
    finally:
        client.close()
