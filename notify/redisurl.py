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
SCHEMES = (*PLAIN_SCHEMES, SENTINEL_SCHEME)
BROKER_SCHEMES = ("amqp", "amqps", "pyamqp")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where Redis is: one server (``url``), or a primary that Sentinel names."""

    kind: Literal["plain", "sentinel"]
    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_redis_url(url: str) -> RedisTarget:
    """The target of a Redis URL; ValueError says what is wrong with it."""
    scheme, sep, rest = url.partition("://")
    if scheme == "redis+cluster":
        # refused rather than half-working: every key of the log shares one slot today
        raise ValueError("redis+cluster:// is not supported yet; use redis+sentinel://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(
            f"unknown scheme {scheme + '://' if sep else url[:20]!r}: use redis://, rediss://,"
            " unix:// or redis+sentinel://host:port[,host:port...]/<service>[/db]"
        )
    if scheme in PLAIN_SCHEMES:
        return RedisTarget("plain", url)
    return _parse_sentinel(rest)


def _parse_sentinel(rest: str) -> RedisTarget:
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        userinfo, hostpart = "", rest
    hosts, _, path = hostpart.partition("/")
    sentinels = tuple(_host_port(h) for h in hosts.split(",") if h)
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
    username: str | None = None
    password: str | None = None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    return RedisTarget("sentinel", "", sentinels, service, db, username=username, password=password)


def _host_port(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"sentinel address {text!r} is not host:port")
    return host.strip("[]"), int(port)


def celery_broker(target: RedisTarget) -> tuple[str, dict[str, object]]:
    """Kombu's broker URL and transport options for a Redis target: Sentinel's own
    transport (``sentinel://…;sentinel://…`` with ``master_name``) for a Sentinel target."""
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
