"""`notify publish` and `notify token`: producing events and tokens from a shell."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

from notify.errors import ConfigError, InvalidInput
from notify.events import loads
from notify.settings import Settings, load
from notify.smtpurl import shown

DEFAULT_TTL = 86400.0


def say_redis(command: str, settings: Settings) -> None:
    """Which Redis a command writes to or reads from: on stderr, so pipes stay clean."""
    print(f"notify {command}: using Redis {shown(settings.redis_url)}", file=sys.stderr)


def cmd_publish(args: argparse.Namespace) -> int:
    from notify.publisher import Publisher

    settings = load()
    try:
        data = loads(args.json, "JSON") if args.json is not None else None
    except InvalidInput as exc:
        print(f"notify publish: {exc.detail}", file=sys.stderr)
        return 2
    say_redis("publish", settings)
    # limits set in this environment win; the rest come from what the gateways use
    limits = ("max_event_bytes", "history_seconds", "history_max_events")
    given = {k: getattr(settings, k) for k in (*limits, "channel_history_max_events")}
    chosen = {k: v for k, v in given.items() if k in settings.model_fields_set}
    with Publisher(settings.redis_url, **chosen) as pub:
        print(pub.publish(args.channel, args.type, data, origin=args.origin))
    return 0


def expiry_note(ttl: float | None, now: float | None = None) -> str:
    if ttl is None:
        return "never expires"
    at = datetime.fromtimestamp((now if now is not None else time.time()) + ttl, UTC)
    return f"expires {at.strftime('%Y-%m-%dT%H:%M:%SZ')} (in {describe(ttl)})"


def describe(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds / size
            shown_n = f"{n:g}" if n != int(n) else str(int(n))
            return f"{shown_n} {unit}{'' if n == 1 else 's'}"
    return f"{seconds:g} s"


def cmd_token(args: argparse.Namespace) -> int:
    from notify.auth import mint

    settings = load()
    secret = args.secret or (
        settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    )
    if not secret:
        raise ConfigError("NOTIFY_JWT_SECRET", "is needed to sign tokens (or pass --secret)")
    if args.no_expiry and args.ttl is not None:
        print("notify token: --ttl and --no-expiry exclude each other", file=sys.stderr)
        return 2
    ttl = None if args.no_expiry else (args.ttl if args.ttl is not None else DEFAULT_TTL)
    if ttl is not None and ttl <= 0:
        print("notify token: --ttl must be positive", file=sys.stderr)
        return 2
    try:
        token = mint(
            secret,
            args.sub,
            publish=args.publish,
            subscribe=args.subscribe,
            admin=args.admin,
            ttl=ttl,
        )
    except InvalidInput as exc:  # a token every gateway would refuse: say so now
        print(f"notify token: {exc.detail}", file=sys.stderr)
        return 2
    if ttl is None:
        print(
            "notify token: warning: this token never expires; it stays valid until"
            " NOTIFY_JWT_SECRET changes",
            file=sys.stderr,
        )
    else:
        print(f"notify token: {expiry_note(ttl)}", file=sys.stderr)
    print(token)
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("publish", help="publish one event straight into Redis (NOTIFY_REDIS_URL)")
    s.add_argument("channel", help="e.g. orders.eu")
    s.add_argument("type", help="e.g. order.created")
    s.add_argument("json", nargs="?", help="event data as JSON (default null)")
    s.add_argument("--origin", help="the event's origin, for echo suppression (per event)")
    s.set_defaults(func=cmd_publish)

    s = sub.add_parser("token", help="mint a JWT for notify (signed with NOTIFY_JWT_SECRET)")
    s.add_argument("--sub", required=True, help="the user id (per token)")
    s.add_argument(
        "--publish", action="append", default=[], metavar="PATTERN", help="may publish here"
    )
    s.add_argument(
        "--subscribe", action="append", default=[], metavar="PATTERN", help="may read here"
    )
    s.add_argument("--admin", action="store_true", help="may do anything, for anyone")
    s.add_argument(
        "--ttl", type=float, default=None, help="seconds until expiry (default 86400: one day)"
    )
    s.add_argument("--no-expiry", action="store_true", help="a token that never expires (warns)")
    s.add_argument("--secret", help="HS256 secret (default NOTIFY_JWT_SECRET)")
    s.set_defaults(func=cmd_token)
