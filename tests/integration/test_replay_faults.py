"""A replay request that meets a Redis unable to serve is retried, not dropped: real
dispatcher, worker and receiver; the fault is ``maxmemory`` set tiny on the real
``redis-server`` while the dispatcher is stopped (SIGSTOP) with the request queued."""

from __future__ import annotations

import json
import signal
import time

import redis

from notify import keys
from tests.integration.delivery_stack import Stack
from tests.support.webhook_receiver import Receiver


def test_a_replay_that_meets_out_of_memory_is_retried_not_dropped(
    stack: Stack, receiver: Receiver
) -> None:
    # published before the subscription: only a replay routes it, so the replay must
    # write a new delivery record (the write that meets out of memory)
    early = stack.publish("orders.eu", data={"n": 0})
    sub = stack.subscribe("orders.>", {"kind": "webhook", "url": receiver.url("/oom")})
    receiver.trust("/oom", sub["secret"])
    first = stack.publish("orders.eu", data={"n": 1})
    receiver.wait("/oom", 1, timeout=30)  # a Celery worker starts slowly on a busy machine
    [dispatcher] = [p for p in stack.procs if p.name == "dispatcher"]
    with redis.Redis.from_url(str(stack.env["NOTIFY_REDIS_URL"])) as r:
        [(until, _)] = r.xrevrange(keys.LOG, count=1)
        dispatcher.kill(signal.SIGSTOP)
        try:
            r.xadd(keys.REPLAYS, {"sub": sub["id"], "after": "0-0", "until": until})
            r.config_set("maxmemory", 1)
        finally:
            dispatcher.kill(signal.SIGCONT)
        try:
            deadline = time.monotonic() + 15
            while "replay failed" not in dispatcher.log_text():
                assert time.monotonic() < deadline, dispatcher.log_tail()
                time.sleep(0.05)
            # still pending in the group: it will be claimed again
            assert r.xpending(keys.REPLAYS, keys.REPLAY_GROUP)["pending"] == 1
        finally:
            r.config_set("maxmemory", 0)
    got = receiver.wait("/oom", 3, timeout=20)
    ids = [json.loads(g.body)["id"] for g in got]
    assert ids[0] == first and sorted(ids[1:]) == sorted([early, first])  # two workers
    assert "dropped" not in dispatcher.log_text()
