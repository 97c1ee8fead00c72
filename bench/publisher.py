"""Event source for the benchmarks: writes straight into Redis, not through HTTP.

``--target notify`` appends with ``notify.Publisher.publish_many`` (the durable log the
gateway tails); ``--target pubsub`` sends the same-sized envelope with Redis ``PUBLISH``
(what the naive peer's broadcaster listens to). Every event carries ``{"t": <send
time>, "n": <seq>}`` so the load generator can measure publish-to-receive latency.

    python bench/publisher.py --redis redis://127.0.0.1:6379/0 --channel bench.x \
        --rate 100 --batch 1 --duration 20

``--rate 0`` publishes as fast as it can, ``--batch`` events per call. It stops by
itself after ``--duration`` seconds and prints ``RESULT {...}``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis

from notify import Publisher

Send = Callable[[list[dict[str, Any]]], None]


def notify_sender(url: str) -> Send:
    publisher = Publisher(url)

    def send(events: list[dict[str, Any]]) -> None:
        publisher.publish_many(events)

    return send


def pubsub_sender(url: str) -> Send:
    client = redis.Redis.from_url(url)
    seq = 0

    def send(events: list[dict[str, Any]]) -> None:
        nonlocal seq
        pipe = client.pipeline(transaction=False)
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for e in events:
            seq += 1
            envelope = {"id": f"{int(time.time() * 1000)}-{seq}", **e, "time": now}
            pipe.publish(e["channel"], json.dumps(envelope, separators=(",", ":")))
        pipe.execute()

    return send


def run(args: argparse.Namespace) -> dict[str, Any]:
    send = (notify_sender if args.target == "notify" else pubsub_sender)(args.redis)
    pad = "x" * args.pad
    sent = 0
    start = time.monotonic()
    deadline = start + args.duration
    cpu0 = time.process_time()
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        n = args.batch
        if args.rate > 0:
            due = int(args.rate * (now - start)) + 1 - sent
            if due <= 0:
                time.sleep(min(deadline - now, (sent + 1) / args.rate - (now - start)))
                continue
            n = min(due, args.batch)
        t = time.time()
        events = [
            {"channel": args.channel, "type": "bench", "data": {"t": t, "n": sent + i, "p": pad}}
            for i in range(n)
        ]
        send(events)
        sent += n
    wall = time.monotonic() - start
    return {
        "target": args.target,
        "published": sent,
        "per_s": round(sent / wall),
        "cpu_pct": round(100 * (time.process_time() - cpu0) / wall, 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--redis", required=True)
    p.add_argument("--target", choices=["notify", "pubsub"], default="notify")
    p.add_argument("--channel", default="bench.x")
    p.add_argument("--rate", type=float, default=0.0, help="events/s; 0 = as fast as possible")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--pad", type=int, default=0, help="extra payload bytes per event")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    print("RESULT", json.dumps(run(parse_args(argv))), flush=True)


if __name__ == "__main__":
    main()
