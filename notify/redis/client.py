"""Redis clients for the long-running roles (dispatcher, worker), built in one place.

A connection left stale by a Redis restart or a network cut fails its next command;
the client reconnects and retries it (three times, backing off from 50 ms), so the
first piece of work after an outage succeeds instead of failing and waiting out a lease.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

Client = aioredis.Redis
"""The asyncio client type the adapters take (a name for modules that must not import redis)."""

SyncClient = redis.Redis

RETRIES = 3
_RETRY_ON = (RedisConnectionError, RedisTimeoutError, ConnectionResetError, OSError)


def connect(url: str, *, socket_timeout: float = 10.0) -> Client:
    """An asyncio client on ``url`` that reconnects and retries after a dropped connection."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=False,
        socket_timeout=socket_timeout,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry=AsyncRetry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), RETRIES, _RETRY_ON),
    )


def connect_sync(url: str, *, socket_timeout: float = 2.0) -> SyncClient:
    """A blocking client for helper threads and supervisors (short timeouts: they poll)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 1, _RETRY_ON),
    )
