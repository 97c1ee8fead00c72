"""The `notify` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from typing import Any

from notify.errors import ConfigError, InvalidInput, NotifyError
from notify.events import loads


def _settings() -> Any:
    from notify.redis.client import verify
    from notify.settings import load

    settings = load()
    # an unknown Sentinel service is a configuration error now, not a 503 forever
    verify(settings.redis_url, timeout=settings.redis_timeout_seconds)
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    settings.require_secret()
    from notify.api.server import serve

    serve(args.host, args.port, args.workers, access_log=args.access_log)
    return 0


def cmd_dispatcher(args: argparse.Namespace) -> int:
    from notify.workers.dispatcher import run

    run(_settings())
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from notify.workers.worker import run

    run(_settings(), args.concurrency)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from notify.publisher import Publisher

    settings = _settings()
    try:
        data = loads(args.json, "JSON") if args.json is not None else None
    except InvalidInput as exc:
        print(f"notify publish: {exc.detail}", file=sys.stderr)
        return 2
    with Publisher(
        settings.redis_url,
        max_event_bytes=settings.max_event_bytes,
        history_seconds=settings.history_seconds,
        history_max_events=settings.history_max_events,
        channel_history_max_events=settings.channel_history_max_events,
    ) as pub:
        print(pub.publish(args.channel, args.type, data, origin=args.origin))
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from notify.cli.tail import tail

    settings = _settings()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail(settings, args.pattern, args.after, args.count))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from notify.auth import mint

    settings = _settings()
    secret = args.secret or (
        settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    )
    if not secret:
        raise ConfigError("NOTIFY_JWT_SECRET", "is needed to sign tokens (or pass --secret)")
    try:
        token = mint(
            secret,
            args.sub,
            publish=args.publish,
            subscribe=args.subscribe,
            admin=args.admin,
            ttl=args.ttl,
        )
    except InvalidInput as exc:  # a token every gateway would refuse: say so now
        print(f"notify token: {exc.detail}", file=sys.stderr)
        return 2
    print(token)
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from notify.cli.dev import run

    return run(port=args.port, workers=args.workers)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="notify", description="event notification fan-out")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the HTTP/SSE/WebSocket gateway")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--access-log", action="store_true")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("dispatcher", help="route events to subscriptions' deliveries")
    s.set_defaults(func=cmd_dispatcher)

    s = sub.add_parser("worker", help="run a Celery sink worker")
    s.add_argument("--concurrency", type=int, default=2)
    s.set_defaults(func=cmd_worker)

    s = sub.add_parser("publish", help="publish one event straight into Redis")
    s.add_argument("channel")
    s.add_argument("type")
    s.add_argument("json", nargs="?", help="event data as JSON (default null)")
    s.add_argument("--origin")
    s.set_defaults(func=cmd_publish)

    s = sub.add_parser("tail", help="print events matching a pattern as they arrive")
    s.add_argument("pattern")
    s.add_argument("--after", help="replay retained events after this id first")
    s.add_argument("--count", type=int, default=None, help="stop after this many events")
    s.set_defaults(func=cmd_tail)

    s = sub.add_parser("token", help="mint a JWT for notify")
    s.add_argument("--sub", required=True)
    s.add_argument("--publish", action="append", default=[], metavar="PATTERN")
    s.add_argument("--subscribe", action="append", default=[], metavar="PATTERN")
    s.add_argument("--admin", action="store_true")
    s.add_argument("--ttl", type=float, default=None, help="seconds until expiry")
    s.add_argument("--secret", help="HS256 secret (default NOTIFY_JWT_SECRET)")
    s.set_defaults(func=cmd_token)

    s = sub.add_parser("dev", help="the whole stack on this machine, no set-up")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    s.set_defaults(func=cmd_dev)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        print(f"notify: configuration error: {exc}", file=sys.stderr)
        return 2
    except NotifyError as exc:
        print(f"notify: {exc.detail}", file=sys.stderr)
        return 1
