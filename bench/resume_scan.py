"""What one wildcard resume over a large log costs the gateway (issue 11, part 4).

Fills a fresh redis-server with ``--events`` events on a channel nobody reads, then
opens one SSE stream on ``user.x.>`` resuming from the first event, and measures the
gateway's CPU time and the wall time until the stream has caught up (the one event
on ``user.x.done``, published last, arrived) or has ended with a continuation
position (its scan budget spent). Run it with and without a budget:

    python -m bench.resume_scan --events 300000 --budget 100000000   # unbounded
    python -m bench.resume_scan --events 300000                       # the default
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

from notify.auth import mint
from notify.publisher import Publisher
from tests.support.procs import Gateway
from tests.support.redis import RedisServer

SECRET = "bench-secret-" + "x" * 32


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_resume(port: int, token: str, cursor: str) -> tuple[float, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(
            f"GET /v1/stream?channel=user.x.%3E&token={token} HTTP/1.1\r\nHost: b\r\n"
            f"Last-Event-ID: {cursor}\r\n\r\n".encode()
        )
        start = time.perf_counter()
        data = b""
        while b"retry: 100\n" not in data and b"user.x.done" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return time.perf_counter() - start, data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--budget", type=int, default=None)
    parser.add_argument("--keepalive", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis").start()
        env: dict[str, object] = {
            "NOTIFY_HISTORY_MAX_EVENTS": args.events + 10,
            "NOTIFY_KEEPALIVE_SECONDS": args.keepalive,
        }
        if args.budget is not None:
            env["NOTIFY_RESUME_SCAN_BUDGET"] = args.budget
        (Path(tmp) / "gw").mkdir()
        gw = Gateway(redis_url=redis.url, jwt_secret=SECRET, directory=Path(tmp) / "gw", env=env)
        try:
            with Publisher(redis.url, history_max_events=args.events + 10) as producer:
                first = producer.publish("noise", "t", 0)
                batch = [{"channel": "noise", "type": "t", "data": 0}] * 1000
                for _ in range(args.events // 1000):
                    producer.publish_many(batch)
                producer.publish("user.x.done", "t", 0)  # caught up once this arrives
            gw.start()
            token = mint(SECRET, "x")
            assert gw.pid is not None
            before = cpu_seconds(gw.pid)
            wall, data = one_resume(gw.port, token, first)
            cpu = cpu_seconds(gw.pid) - before
            ended = b"retry: 100" in data
            print(
                f"events={args.events} budget={args.budget or 'default'} wall={wall:.3f}s "
                f"gateway_cpu={cpu:.3f}s {'continuation' if ended else 'caught up'}"
            )
        finally:
            gw.terminate()
            redis.stop()


if __name__ == "__main__":
    main()
