"""`notify serve`, `notify dispatcher`, `notify worker`: one production role each."""

from __future__ import annotations

import argparse
from typing import Any

from notify.settings import Settings, load


def settings() -> Settings:
    from notify import tracing
    from notify.redis.client import verify
    from notify.redis.eventlog import verify_shards

    tracing.require()  # a malformed OTEL_* variable while tracing: say so now
    found = load()
    # an unknown Sentinel service is a configuration error, not a 503 forever
    verify(found.redis_url, timeout=found.redis_timeout_seconds)
    # a store written with another number of shards: refused rather than half read
    verify_shards(found.redis_url, found.shards, timeout=found.redis_timeout_seconds)
    return found


def cmd_serve(args: argparse.Namespace) -> int:
    s = settings()
    s.require_secret()
    from notify.api.server import serve

    serve(
        args.host or s.host,
        args.port or s.port,
        args.workers or s.workers,
        access_log=args.access_log or s.access_log,
        shared=args.shared_port,
    )
    return 0


def cmd_dispatcher(args: argparse.Namespace) -> int:
    from notify.workers.dispatcher import run

    run(settings())
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from notify.workers.worker import run

    s = settings()
    run(s, args.concurrency or s.worker_concurrency)
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("serve", help="run the HTTP/SSE/WebSocket gateway")
    s.add_argument("--host", help="address to listen on (NOTIFY_HOST, default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port to listen on (NOTIFY_PORT, default 8000)")
    s.add_argument(
        "--workers", type=int, help="gateway processes sharing the port (NOTIFY_WORKERS, default 1)"
    )
    s.add_argument(
        "--access-log",
        action="store_true",
        default=None,
        help="log every request (NOTIFY_ACCESS_LOG, default off)",
    )
    # a worker of `serve --workers`, joining the port its supervisor holds (internal)
    s.add_argument("--shared-port", action="store_true", help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("dispatcher", help="route events to subscriptions' deliveries")
    s.set_defaults(func=cmd_dispatcher)

    s = sub.add_parser("worker", help="run a Celery sink worker")
    s.add_argument(
        "--concurrency",
        type=int,
        help="deliveries in flight at once (NOTIFY_WORKER_CONCURRENCY, default 2)",
    )
    s.set_defaults(func=cmd_worker)
