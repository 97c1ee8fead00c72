"""The one place Redis clients are made.

Every client in notify comes from here, so every role gets the same schemes
(``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``) and the same deadlines.
Two profiles:

- **command**: request paths and background commands. Each command answers within
  ``NOTIFY_REDIS_TIMEOUT_SECONDS`` or fails (connecting, reading, writing alike); a hung
  Redis (``kill -STOP``) is then a 503 within seconds, not after redis-py's default of
  three retries with back-off, which also retries timeouts. A connection that dropped is
  re-dialled at once, twice (a Redis restart, a Sentinel failover), a timeout never.
- **blocking**: one connection for a blocking read (XREAD/XREADGROUP ... BLOCK); its
  deadline is the block time plus the command deadline.

With Sentinel, each new connection asks the sentinels for the current primary, and a
connection that finds it has become a replica (READONLY) is dropped, so a failover is a
few 503s and then service from the new primary, without a restart.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from notify.errors import ConfigError
from notify.redisurl import RedisTarget, parse_redis_url

AsyncRedis = aioredis.Redis
SyncRedis = redis.Redis
DEFAULT_TIMEOUT = 3.0
RECONNECTS = 2


def _options(timeout: float, read_timeout: float, max_connections: int | None) -> dict[str, Any]:
    return {
        "decode_responses": False,
        "socket_timeout": read_timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
        "max_connections": max_connections,
    }


def _async_retry() -> AsyncRetry:
    return AsyncRetry(
        ExponentialWithJitterBackoff(base=0.01, cap=0.2),
        RECONNECTS,
        supported_errors=(redis.exceptions.ConnectionError,),
    )


def _sync_retry() -> Retry:
    return Retry(
        ExponentialWithJitterBackoff(base=0.01, cap=0.2),
        RECONNECTS,
        supported_errors=(redis.exceptions.ConnectionError,),
    )


def _sentinel_options(target: RedisTarget, timeout: float) -> dict[str, Any]:
    return {
        # the sentinels themselves answer within the command deadline too
        "sentinel_kwargs": {"socket_timeout": timeout, "socket_connect_timeout": timeout},
        "db": target.db,
        "username": target.username,
        "password": target.password,
    }


def async_client(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    block_seconds: float = 0.0,
    max_connections: int | None = None,
    name: str | None = None,
) -> AsyncRedis:
    """A command client (``block_seconds=0``) or a blocking reader's client; ``name``
    is its connections' CLIENT SETNAME (health checks look for it)."""
    target = parse_redis_url(url)
    options = _options(timeout, timeout + block_seconds, max_connections)
    if name is not None:
        options["client_name"] = name
    options["retry"] = _async_retry()
    if target.kind == "sentinel":
        sentinel_options = _sentinel_options(target, timeout)
        sentinel = AsyncSentinel(
            target.sentinels,
            sentinel_kwargs=sentinel_options.pop("sentinel_kwargs"),
            **sentinel_options,
        )
        client: AsyncRedis = sentinel.master_for(target.service, **options)
        return client
    return aioredis.Redis.from_url(url, **options)


def sync_client(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> SyncRedis:
    """A blocking-I/O command client (the producer library, command-line tools)."""
    target = parse_redis_url(url)
    options = _options(timeout, timeout, None)
    options["retry"] = _sync_retry()
    if target.kind == "sentinel":
        sentinel_options = _sentinel_options(target, timeout)
        sentinel = Sentinel(
            target.sentinels,
            sentinel_kwargs=sentinel_options.pop("sentinel_kwargs"),
            **sentinel_options,
        )
        client: SyncRedis = sentinel.master_for(target.service, **options)
        return client
    return redis.Redis.from_url(url, **options)


def verify(url: str, variable: str = "NOTIFY_REDIS_URL", timeout: float = DEFAULT_TIMEOUT) -> None:
    """At start-up: a Sentinel service that no reachable sentinel knows is a
    configuration error (a down Redis is not: the roles wait for it)."""
    target = parse_redis_url(url)
    if target.kind != "sentinel":
        return
    sentinel = Sentinel(
        target.sentinels,
        sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
    )
    answered = False
    for node in sentinel.sentinels:
        try:
            masters = node.sentinel_masters()
        except redis.RedisError:
            continue
        finally:
            node.close()
        answered = True
        if target.service in masters:
            return
    if answered:
        raise ConfigError(
            variable, f"no sentinel knows the service {target.service!r} (SENTINEL MASTERS)"
        )


Client = AsyncRedis
"""The asyncio client type the adapters take (a name for modules that must not import redis)."""

SyncClient = SyncRedis

ROLE_TIMEOUT = 10.0
"""The command deadline of the dispatcher's and worker's own clients: no user waits on
them, and a lease renewal that gives up early costs more than one that waits."""


def connect(url: str, *, socket_timeout: float = ROLE_TIMEOUT) -> Client:
    """A long-running role's client: a connection left stale by a Redis restart fails
    its next command, and the client re-dials and retries it, so the first piece of work
    after an outage succeeds instead of failing and waiting out a lease."""
    return async_client(url, timeout=socket_timeout)


def connect_sync(url: str, *, socket_timeout: float = 2.0) -> SyncClient:
    """A blocking client for helper threads and supervisors (short deadline: they poll)."""
    return sync_client(url, timeout=socket_timeout)


__all__ = [
    "AsyncRedis",
    "Client",
    "SyncClient",
    "SyncRedis",
    "async_client",
    "connect",
    "connect_sync",
    "sync_client",
    "verify",
]
