"""`notify check`: is this configuration usable? Validate it, reach what it names, and
print the effective settings with secrets masked."""

from __future__ import annotations

import argparse
import asyncio
import os
import smtplib
import ssl
import sys
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from notify.errors import ConfigError
from notify.settings import SECRET_FIELDS, Settings, load, variable
from notify.smtpurl import parse_smtp_url, shown

MASK = "********"
TIMEOUT = 5.0


def masked(field: str, value: object) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if field in ("redis_url", "smtp_url", "broker_url"):
        return shown(str(value))
    if field in SECRET_FIELDS:
        return MASK
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return "(empty)"
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def source(field: str, environ: Mapping[str, str]) -> str:
    if variable(field) + "_FILE" in environ:
        return "file"
    return "env" if variable(field) in environ else "default"


def effective(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """One line per setting: variable, value (secrets masked), where it came from."""
    rows = [
        (variable(f), masked(f, getattr(settings, f)), source(f, environ))
        for f in Settings.model_fields
    ]
    width = max(len(name) for name, _, _ in rows)
    return [f"  {name.ljust(width)}  {value}  [{where}]" for name, value, where in rows]


async def ping_redis(url: str) -> None:
    from notify.redis.eventlog import connect, translated

    async with asyncio.timeout(TIMEOUT), connect(url) as client:
        with translated():
            await client.ping()


def reach_broker(url: str) -> None:
    """Open and close one connection to Celery's own broker (NOTIFY_BROKER_URL)."""
    from kombu import Connection

    with Connection(url, connect_timeout=TIMEOUT) as conn:
        conn.ensure_connection(max_retries=1, timeout=int(TIMEOUT))


def greet_smtp(url: str) -> str:
    """Connect, EHLO and, when the URL asks for it, STARTTLS; the server's greeting."""
    target = parse_smtp_url(url)
    smtp: smtplib.SMTP
    if target.implicit_tls:
        smtp = smtplib.SMTP_SSL(target.host, target.port, timeout=TIMEOUT)
    else:
        smtp = smtplib.SMTP(target.host, target.port, timeout=TIMEOUT)
    with smtp:
        code, banner = smtp.ehlo()
        if target.starttls:
            smtp.starttls(context=ssl.create_default_context())
        return f"{code} {banner.decode(errors='replace').splitlines()[0]}"


def cmd_check(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    failures = 0
    try:
        settings = load()
    except ConfigError as exc:
        print(f"config   FAIL  {exc}")
        return 2
    print("config   ok")
    if settings.jwt_secret is None and settings.jwt_public_key is None:
        print("secret   FAIL  NOTIFY_JWT_SECRET (or NOTIFY_JWT_PUBLIC_KEY) is unset: serve refuses")
        failures += 1
    try:
        asyncio.run(ping_redis(settings.redis_url))
        print(f"redis    ok    {shown(settings.redis_url)}")
        if not settings.broker_url:
            print("broker   ok    the same Redis (Celery's keys under its own prefix)")
    except Exception as exc:  # any failure to reach it is the answer, not a crash
        print(f"redis    FAIL  {shown(settings.redis_url)}: {type(exc).__name__}: {exc}")
        failures += 1
    if settings.broker_url:
        try:
            reach_broker(settings.broker_url)
            print(f"broker   ok    {shown(settings.broker_url)}")
        except Exception as exc:  # any failure to reach it is the answer, not a crash
            print(f"broker   FAIL  {shown(settings.broker_url)}: {type(exc).__name__}")
            failures += 1
    if variable("smtp_url") in environ or variable("smtp_url") + "_FILE" in environ:
        url = settings.smtp_url.get_secret_value()
        try:
            print(f"smtp     ok    {shown(url)}: {greet_smtp(url)}")
        except (OSError, smtplib.SMTPException) as exc:
            print(f"smtp     FAIL  {shown(url)}: {type(exc).__name__}: {exc}")
            failures += 1
    else:
        print("smtp     skip  NOTIFY_SMTP_URL is not set (email deliveries would use the default)")
    print("effective settings:")
    print("\n".join(effective(settings, environ)))
    sys.stdout.flush()
    return 1 if failures else 0


def register(sub: Any) -> None:
    s = sub.add_parser(
        "check",
        help="validate the NOTIFY_* settings, reach Redis (and the broker and SMTP when"
        " NOTIFY_BROKER_URL and NOTIFY_SMTP_URL are set), print the effective settings with"
        " secrets masked",
    )
    s.set_defaults(func=cmd_check)
