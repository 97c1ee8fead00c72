"""A sharded event log (``NOTIFY_SHARDS=3``) on one Redis: the shards' own logs,
cursors over every shard, exact resume, batches, producers, deliveries from every
shard, and a role configured with another shard count refused at start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import redis

from notify import keys
from tests.integration import sharding
from tests.integration.delivery_stack import make_stack
from tests.support.factories import GatewayFactory, ProcFactory, TokenMaker
from tests.support.procs import child_env
from tests.support.redis import RedisServer
from tests.support.webhook_receiver import Receiver

SHARDS = sharding.SHARDS


def test_streams_history_and_batches_over_three_shards(
    redis_server: RedisServer, gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    gateway = gateway_factory(NOTIFY_SHARDS=SHARDS)
    token = make_token(publish=[">"], subscribe=[">"])
    base = gateway.base_url
    sharding.run(sharding.sse_resumes_exactly(base, token))
    sharding.run(sharding.ws_resumes_exactly(base, token))
    published = sharding.publish_round(base, token, "history")
    sharding.history_pages_cover_every_shard(base, token, published)
    sharding.batch_is_idempotent_across_shards(base, token)
    sharding.run(sharding.producer_follows_the_store(base, token, redis_server.url))
    client = redis.Redis.from_url(redis_server.url)
    # each shard wrote its own log; the unsharded log was never written
    lengths = [client.xlen(s.log) for s in keys.all_shards(sharding.SHARDS)]
    assert all(n > 0 for n in lengths), lengths
    assert not client.exists(keys.LOG)
    assert client.get(keys.SHARDS) == b"3"


def test_a_role_with_another_shard_count_is_refused(
    redis_server: RedisServer, gateway_factory: GatewayFactory, proc_factory: ProcFactory
) -> None:
    gateway_factory(NOTIFY_SHARDS=SHARDS)  # records 3
    for role in (("serve", "--port", "0"), ("dispatcher",)):
        proc = proc_factory(*role, NOTIFY_SHARDS=2)
        assert proc.wait(30) == 2, proc.log_tail()
        assert "NOTIFY_SHARDS" in proc.log_text()
        assert "3 shard(s)" in proc.log_text()


def test_deliveries_come_from_every_shard(
    redis_server: RedisServer,
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    stack = make_stack(
        gateway_factory, make_token, tmp_path / "stack", redis_server.url, NOTIFY_SHARDS=SHARDS
    )
    try:
        sub = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url("/hook")})
        ids = [stack.publish(c) for c in sharding.CHANNELS]
        stack.wait_events(sub["id"], "delivered", ids, timeout=60)
        bodies = [json.loads(r.body) for r in receiver.wait("/hook", len(ids), timeout=30)]
        assert sorted(b["id"] for b in bodies) == sorted(ids)
        # a replay reads every shard's log: everything after the first event, again
        r = stack.client.post(f"/v1/subscriptions/{sub['id']}/replay", json={"after": ids[0]})
        assert r.status_code == 202, r.text
        again = receiver.wait("/hook", 2 * len(ids) - 1, timeout=60)[len(ids) :]
        assert sorted(json.loads(r.body)["id"] for r in again) == sorted(ids[1:])
    finally:
        stack.close()


def test_the_command_line_publishes_and_tails_every_shard(redis_server: RedisServer) -> None:
    """`notify publish` and `notify tail` follow the shard count the store records: a
    tail from the start gets what was kept, then what comes live, every shard's."""
    redis.Redis.from_url(redis_server.url).set(keys.SHARDS, SHARDS)
    env = child_env({"NOTIFY_REDIS_URL": redis_server.url})

    def publish(channel: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "notify", "publish", channel, "t", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    ids = [publish(c) for c in sharding.CHANNELS[:6]]
    tail = subprocess.Popen(
        [sys.executable, "-m", "notify", "tail", "orders.>", "--after", "0", "--count", "12"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # kept ones (up to the head the tail read) come from history, the rest live
        ids += [publish(c) for c in sharding.CHANNELS[6:]]
        tailed, errors = tail.communicate(timeout=60)
    finally:
        tail.kill()
    assert tail.returncode == 0, errors
    sharding.check_ids([json.loads(line) for line in tailed.splitlines()], ids)
