"""NOTIFY_REDIS_URL and NOTIFY_BROKER_URL, read before any client is made."""

from __future__ import annotations

import pytest

from notify.errors import ConfigError
from notify.redisurl import RedisTarget, celery_broker, is_cluster, parse_redis_url
from notify.settings import load


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("redis://h:1/0", RedisTarget("plain", "redis://h:1/0")),
        ("rediss://h:1/2", RedisTarget("plain", "rediss://h:1/2")),
        ("unix:///run/redis.sock", RedisTarget("plain", "unix:///run/redis.sock")),
        (
            "redis+sentinel://a:26379,b:26380/main",
            RedisTarget("sentinel", "", (("a", 26379), ("b", 26380)), "main", 0),
        ),
        (
            "redis+sentinel://u:p%40ss@a:1/main/3",
            RedisTarget("sentinel", "", (("a", 1),), "main", 3, "u", "p@ss"),
        ),
        (
            "redis+sentinel://:pw@[::1]:1/main",
            RedisTarget("sentinel", "", (("::1", 1),), "main", 0, None, "pw"),
        ),
        (
            "redis+cluster://a:7000,b:7001",
            RedisTarget("cluster", "", nodes=(("a", 7000), ("b", 7001))),
        ),
        ("redis+cluster://a:7000/", RedisTarget("cluster", "", nodes=(("a", 7000),))),
        ("redis+cluster://a:7000/0", RedisTarget("cluster", "", nodes=(("a", 7000),))),
        (
            "redis+cluster://u:p%40ss@a:1,[::1]:2",
            RedisTarget("cluster", "", nodes=(("a", 1), ("::1", 2)), username="u", password="p@ss"),
        ),
        (
            "redis+cluster://:pw@a:1",
            RedisTarget("cluster", "", nodes=(("a", 1),), password="pw"),
        ),
    ],
)
def test_parses(url: str, target: RedisTarget) -> None:
    assert parse_redis_url(url) == target


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://h:1/0", "unknown scheme"),
        ("localhost:6379", "unknown scheme"),
        ("redis+cluster://", "at least one node"),
        ("redis+cluster://u:p@/0", "at least one node"),
        ("redis+cluster://a", "host:port"),
        ("redis+cluster://a:1,b", "host:port"),
        ("redis+cluster://a:0", "host:port"),
        ("redis+cluster://a:65536", "host:port"),
        ("redis+cluster://a:x", "host:port"),
        ("redis+cluster://:1", "host:port"),
        ("redis+cluster://a:1/1", "only database 0"),
        ("redis+cluster://a:1/main", "only database 0"),
        ("redis+cluster://a:1?db=0", "no query options"),
        ("redis-cluster://a:1", "unknown scheme"),
        ("redis+sentinel:///main", "at least one sentinel"),
        ("redis+sentinel://a:1", "service name"),
        ("redis+sentinel://a:1/main/x", "not a number"),
        ("redis+sentinel://a:1/main/0/9", "service name"),
        ("redis+sentinel://a/main", "host:port"),
        ("redis+sentinel://a:99999/main", "host:port"),
    ],
)
def test_refuses(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_redis_url(url)
    with pytest.raises(ConfigError, match="NOTIFY_REDIS_URL"):
        load(redis_url=url)


def test_is_cluster() -> None:
    assert is_cluster("redis+cluster://a:1")
    assert not is_cluster("redis://a:1/0")
    assert not is_cluster("redis+sentinel://a:1/main")
    assert not is_cluster("a:1")


def test_kombu_has_no_cluster_transport() -> None:
    with pytest.raises(ValueError, match="no Redis Cluster transport"):
        celery_broker(parse_redis_url("redis+cluster://a:1"))


@pytest.mark.parametrize("broker", [None, ""])
def test_a_cluster_store_needs_an_amqp_broker(broker: str | None) -> None:
    """Celery's broker defaults to the store, and kombu cannot speak to a cluster."""
    with pytest.raises(ConfigError, match="NOTIFY_BROKER_URL") as got:
        load(redis_url="redis+cluster://a:1,b:2", broker_url=broker)
    assert "Redis Cluster" in str(got.value)


@pytest.mark.parametrize("broker", ["amqp://h//", "amqps://u:p@h:5671/v", "pyamqp://h"])
def test_a_cluster_store_takes_an_amqp_broker(broker: str) -> None:
    found = load(redis_url="redis+cluster://a:1", broker_url=broker)
    assert found.broker_url == broker
    assert load(redis_url="redis://a:1/0", broker_url=None).broker_url is None


def test_celery_broker_uses_kombus_sentinel_transport() -> None:
    url, options = celery_broker(parse_redis_url("redis+sentinel://u:p@a:1,b:2/main/4"))
    assert url == "sentinel://u:p@a:1/4;sentinel://u:p@b:2/4"
    assert options == {"master_name": "main"}
    assert celery_broker(parse_redis_url("redis://h:1/0")) == ("redis://h:1/0", {})


@pytest.mark.parametrize("url", ["redis://h:1/0", "http://h", "amqp"])
def test_broker_url_must_be_amqp(url: str) -> None:
    with pytest.raises(ConfigError, match="NOTIFY_BROKER_URL"):
        load(broker_url=url)
    assert load(broker_url="amqp://guest:guest@127.0.0.1:5672/v").broker_url


@pytest.mark.parametrize(
    ("url", "broker"),
    [
        ("unix:///run/redis/r.sock?db=3", "redis+socket:///run/redis/r.sock?virtual_host=3"),
        ("unix:///run/redis/r.sock", "redis+socket:///run/redis/r.sock?virtual_host=0"),
        ("unix://:p%40ss@/r.sock", "redis+socket://:p%40ss@/r.sock?virtual_host=0"),
        ("unix://u:pw@/r.sock?db=2", "redis+socket://u:pw@/r.sock?virtual_host=2"),
        ("unix:///r.sock?password=abc", "redis+socket://:abc@/r.sock?virtual_host=0"),
    ],
)
def test_a_unix_socket_is_spelled_for_kombu(url: str, broker: str) -> None:
    """Kombu has no unix:// transport: the worker's Celery would die at start."""
    assert celery_broker(parse_redis_url(url)) == (broker, {})
