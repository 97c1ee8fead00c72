"""``NOTIFY_REDIS_URL`` and ``NOTIFY_BROKER_URL`` read once, before any client is made.

Pure: the Redis client factory (``notify.redis.client``) and the Celery app build their
connections from what this returns, and the settings validate with it at start-up, so a
bad URL is an error naming the variable rather than a failure on the first request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

PLAIN_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
SCHEMES = (*PLAIN_SCHEMES, SENTINEL_SCHEME, CLUSTER_SCHEME)
BROKER_SCHEMES = ("amqp", "amqps", "pyamqp")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where Redis is: one server (``url``), a primary that Sentinel names, or a Redis
    Cluster found through its startup ``nodes`` (any of them; the client learns the rest)."""

    kind: Literal["plain", "sentinel", "cluster"]
    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    nodes: tuple[tuple[str, int], ...] = ()


def parse_redis_url(url: str) -> RedisTarget:
    """The target of a Redis URL; ValueError says what is wrong with it."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(
            f"unknown scheme {scheme + '://' if sep else url[:20]!r}: use redis://, rediss://,"
            " unix://, redis+sentinel://host:port[,host:port...]/<service>[/db]"
            " or redis+cluster://host:port[,host:port...]"
        )
    if scheme in PLAIN_SCHEMES:
        return RedisTarget("plain", url)
    if scheme == CLUSTER_SCHEME:
        return _parse_cluster(rest)
    return _parse_sentinel(rest)


def is_cluster(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://``)."""
    return url.partition("://")[0] == CLUSTER_SCHEME


def _parse_cluster(rest: str) -> RedisTarget:
    username, password, hostpart = _userinfo(rest)
    hosts, slash, path = hostpart.partition("/")
    if "?" in hosts or "?" in path:
        raise ValueError("redis+cluster:// takes no query options")
    nodes = tuple(_host_port(h, "cluster node") for h in hosts.split(",") if h)
    if not nodes:
        raise ValueError("redis+cluster:// needs at least one node host:port")
    if slash and path not in ("", "0"):
        # SELECT is refused by every cluster node
        raise ValueError(f"database {path!r}: Redis Cluster has only database 0")
    return RedisTarget("cluster", "", nodes=nodes, username=username, password=password)


def _userinfo(rest: str) -> tuple[str | None, str | None, str]:
    """``user:password@`` (both optional, percent-decoded) and what follows it."""
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return None, None, rest
    user, colon, secret = userinfo.partition(":")
    return unquote(user) or None, unquote(secret) if colon else None, hostpart


def _parse_sentinel(rest: str) -> RedisTarget:
    username, password, hostpart = _userinfo(rest)
    hosts, _, path = hostpart.partition("/")
    sentinels = tuple(_host_port(h, "sentinel") for h in hosts.split(",") if h)
    if not sentinels:
        raise ValueError("redis+sentinel:// needs at least one sentinel host:port")
    segments = [s for s in path.split("/") if s]
    if not segments or len(segments) > 2:
        raise ValueError("redis+sentinel:// needs the service name as its path: .../<service>[/db]")
    service = unquote(segments[0])
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise ValueError(f"database {segments[1]!r} is not a number")
        db = int(segments[1])
    return RedisTarget("sentinel", "", sentinels, service, db, username=username, password=password)


def _host_port(text: str, what: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} address {text!r} is not host:port")
    return host.strip("[]"), int(port)


def celery_broker(target: RedisTarget) -> tuple[str, dict[str, object]]:
    """Kombu's broker URL and transport options for a Redis target: Sentinel's own
    transport (``sentinel://…;sentinel://…`` with ``master_name``) for a Sentinel target.
    ValueError for a cluster: kombu has no Redis Cluster transport (the settings refuse
    a cluster store without ``NOTIFY_BROKER_URL``)."""
    if target.kind == "cluster":
        raise ValueError("kombu has no Redis Cluster transport: set an amqp:// broker")
    if target.kind == "plain":
        if target.url.startswith("unix://"):
            return unix_broker(target.url), {}
        return target.url, {}
    auth = ""
    if target.password is not None:
        auth = f"{quote(target.username or '', safe='')}:{quote(target.password, safe='')}@"
    urls = ";".join(f"sentinel://{auth}{h}:{p}/{target.db}" for h, p in target.sentinels)
    return urls, {"master_name": target.service}


def unix_broker(url: str) -> str:
    """Kombu's spelling of a Unix-socket Redis (it has no ``unix://`` transport):
    ``redis+socket://[user:password@]/path?virtual_host=DB``."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    user = unquote(parts.username or query.get("username", ""))
    password = parts.password
    password = unquote(password) if password is not None else query.get("password")
    auth = ""
    if user or password:
        auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}@"
    return f"redis+socket://{auth}{parts.path}?virtual_host={query.get('db', '0')}"


def check_broker_url(url: str) -> str:
    """``NOTIFY_BROKER_URL``: AMQP (RabbitMQ); Redis is the broker when it is unset."""
    scheme = url.partition("://")[0]
    if "://" not in url or scheme not in BROKER_SCHEMES:
        raise ValueError("must be an amqp:// (or amqps://) URL; leave it unset to use Redis")
    urlsplit(url)  # raises on a malformed port or bracket
    return url
