"""The one place Redis clients are made.

Every client in notify comes from here, so every role gets the same schemes
(``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``, ``redis+cluster://``)
and the same deadlines. Two profiles:

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

With Redis Cluster (``redis.cluster.RedisCluster`` and its asyncio twin) the client
learns the slot map from the startup nodes (lazily for asyncio, in the constructor for
the blocking client), keeps a connection pool per node (``max_connections`` each) and
follows MOVED and ASK itself: a MOVED patches that slot at once and every fifth asks
for a refresh of the whole map. A dropped connection asks for a refresh too, run by the
next command at most once a second, and the command is sent again (twice at most, as
above); CLUSTERDOWN and an uncovered slot refresh the map and are sent again the same
way. A timeout is not sent again by a single command (our subclasses drop it from
redis-py's retried errors); a cluster *pipeline* still retries it, redis-py hard-codes
that. So a failover is a few errors (``ConnectionError``, ``ClusterDownError``; while no
node answers at all ``RedisClusterUnreachableError``, which is no ``RedisError``) and
then service from the promoted replica, without a restart. A cluster has database 0
only, and no Celery broker (kombu has no Redis Cluster transport).

The cluster clients are typed as the plain ones (``AsyncRedis``, ``SyncRedis``), so the
adapters take either; they answer the same keyed commands, but not alike: keyless
commands (PING, INFO, CLIENT LIST, WAIT, TIME) go to one node, a command or
transaction over keys of several slots raises ``RedisClusterException`` (no
``RedisError``), and a script queued in a cluster pipeline is never loaded for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster as cluster
from redis._parsers.encoders import Encoder
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import Script
from redis.exceptions import ClusterDownError, SlotNotCoveredError
from redis.retry import Retry
from redis.sentinel import Sentinel

from notify.errors import ConfigError
from notify.redisurl import RedisTarget, parse_redis_url

AsyncRedis = aioredis.Redis
SyncRedis = redis.Redis
DEFAULT_TIMEOUT = 3.0
RECONNECTS = 2
CLUSTER_SLOTS = 16384

# What a cluster client sends again (after refreshing its slot map): redis-py also
# retries TimeoutError, which would make a hung node cost three deadlines per command
_CLUSTER_RETRIED = (redis.exceptions.ConnectionError, ClusterDownError, SlotNotCoveredError)


class AsyncRedisCluster(aiocluster.RedisCluster):
    """redis-py's asyncio cluster client, a timeout not sent again."""

    ERRORS_ALLOW_RETRY = _CLUSTER_RETRIED  # type: ignore[assignment]


class SyncRedisCluster(cluster.RedisCluster):
    """redis-py's cluster client, a timeout not sent again."""

    ERRORS_ALLOW_RETRY = _CLUSTER_RETRIED  # type: ignore[assignment]


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


def _cluster_options(
    target: RedisTarget, timeout: float, read_timeout: float, max_connections: int | None
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "decode_responses": False,
        "socket_timeout": read_timeout,
        "socket_connect_timeout": timeout,
        "username": target.username,
        "password": target.password,
        # every slot must have a primary before the client serves (a refresh that
        # finds holes raises, and the next command refreshes again)
        "require_full_coverage": True,
    }
    if max_connections is not None:  # per node
        options["max_connections"] = max_connections
    return options


def async_client(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    block_seconds: float = 0.0,
    max_connections: int | None = None,
    name: str | None = None,
) -> AsyncRedis:
    """A command client (``block_seconds=0``) or a blocking reader's client; ``name``
    is its connections' CLIENT SETNAME (health checks look for it). For a
    ``redis+cluster://`` URL an :class:`AsyncRedisCluster` (``max_connections`` per
    node)."""
    target = parse_redis_url(url)
    if target.kind == "cluster":
        options = _cluster_options(target, timeout, timeout + block_seconds, max_connections)
        if name is not None:
            options["client_name"] = name
        found: Any = AsyncRedisCluster(
            startup_nodes=[aiocluster.ClusterNode(h, p) for h, p in target.nodes],
            retry=_async_retry(),
            health_check_interval=30,
            **options,
        )
        return cast(AsyncRedis, found)
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
    """A blocking-I/O command client (the producer library, command-line tools). For a
    ``redis+cluster://`` URL a :class:`SyncRedisCluster`, which reads the slot map as it
    is made: it raises ``RedisClusterUnreachableError`` when no startup node answers."""
    target = parse_redis_url(url)
    if target.kind == "cluster":
        found: Any = SyncRedisCluster(
            startup_nodes=[
                cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
                for h, p in target.nodes
            ],
            retry=_sync_retry(),
            **_cluster_options(target, timeout, timeout, None),
        )
        return cast(SyncRedis, found)
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
    """At start-up: a Sentinel service that no reachable sentinel knows, or a cluster
    whose answering nodes all say it is not serving every slot, is a configuration error
    (a down Redis is not: the roles wait for it)."""
    target = parse_redis_url(url)
    if target.kind == "cluster":
        _verify_cluster(target, variable, timeout)
        return
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


def _verify_cluster(target: RedisTarget, variable: str, timeout: float) -> None:
    """CLUSTER INFO from each startup node until one says ``cluster_state:ok`` with all
    16384 slots assigned; a node in cluster mode off is an error too."""
    problems: list[str] = []
    for host, port in target.nodes:
        node = redis.Redis(
            host=host,
            port=port,
            username=target.username,
            password=target.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=_sync_retry(),
        )
        try:
            raw = node.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
        except redis.exceptions.ResponseError as exc:
            problems.append(f"{host}:{port} is not a cluster node ({exc})")
            continue
        except redis.RedisError:
            continue  # down or unreachable: not a configuration error
        finally:
            node.close()
        info = _cluster_info(raw)
        state = info.get("cluster_state", "?")
        assigned = info.get("cluster_slots_assigned", "?")
        if state == "ok" and assigned == str(CLUSTER_SLOTS):
            return
        problems.append(
            f"{host}:{port} says cluster_state:{state}, {assigned} of {CLUSTER_SLOTS} slots"
            " assigned"
        )
    if problems:
        raise ConfigError(
            variable,
            "the cluster is not fully covered (CLUSTER INFO): " + "; ".join(problems),
        )


def _cluster_info(raw: Any) -> dict[str, str]:
    """CLUSTER INFO's ``name:value`` lines (redis-py may have parsed them already)."""
    if isinstance(raw, dict):
        return {_text(k): _text(v) for k, v in raw.items()}
    pairs = (line.partition(":") for line in _text(raw).splitlines())
    return {name.strip(): value.strip() for name, _, value in pairs if name}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
    """A blocking client for helper threads and supervisors (short deadline: they poll).
    A cluster's is made on first use (:class:`LazyCluster`): they are built at start,
    when the cluster may not answer yet, and then poll."""
    if parse_redis_url(url).kind == "cluster":
        return cast(SyncClient, LazyCluster(lambda: sync_client(url, timeout=socket_timeout)))
    return sync_client(url, timeout=socket_timeout)


class LazyCluster:
    """A blocking cluster client made on its first command: redis-py's reads the slot
    map in its constructor and raises there when no node answers, where a plain
    client would fail only the command. Until made, each use tries again."""

    def __init__(self, make: Callable[[], SyncRedis]) -> None:
        self._make = make
        self._client: SyncRedis | None = None

    def _get(self) -> SyncRedis:
        if self._client is None:
            self._client = self._make()
        return self._client

    def get_encoder(self) -> Encoder:
        # what a Script asks for when it is registered: no connection needed
        return Encoder("utf-8", "strict", False)  # type: ignore[no-untyped-call]

    def register_script(self, script: str) -> Script:
        return Script(cast(Any, self), script)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


__all__ = [
    "AsyncRedis",
    "AsyncRedisCluster",
    "Client",
    "SyncClient",
    "SyncRedis",
    "SyncRedisCluster",
    "async_client",
    "connect",
    "connect_sync",
    "sync_client",
    "verify",
]
