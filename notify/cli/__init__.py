"""The `notify` command: one sub-command per module of this package."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from notify.errors import ConfigError, NotifyError

SERVER_EXTRA = frozenset({"pydantic", "pydantic_settings", "fastapi", "uvicorn", "celery", "jwt"})


def notify_version() -> str:
    try:
        return version("notify")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def parser() -> argparse.ArgumentParser:
    from notify.cli import check, dev, producer, roles, tail

    p = argparse.ArgumentParser(
        prog="notify",
        description="event notification fan-out. Every setting is a NOTIFY_* environment"
        " variable (`notify check` prints them all); options override their variable.",
    )
    p.add_argument("--version", action="version", version=f"notify {notify_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    for module in (roles, producer, tail, check, dev):
        module.register(sub)
    return p


def warn_unknown(environ: dict[str, str]) -> None:
    """A misspelt variable is otherwise silently ignored: say so at start."""
    from notify.settings import unknown_variables

    for name, likely in unknown_variables(environ):
        hint = f"; did you mean {likely}?" if likely else ""
        print(f"notify: warning: {name} is not a notify setting{hint}", file=sys.stderr)


ROLES = {"serve": "gateway", "dev": "dev"}


def setup_logging(role: str) -> None:
    """NOTIFY_LOG_FORMAT and NOTIFY_LOG_LEVEL for this process; a configuration that does
    not load is reported by the command itself, so logging then keeps its defaults."""
    from notify.errors import ConfigError
    from notify.logs import configure
    from notify.settings import load

    try:
        settings = load()
    except ConfigError:
        configure(role)
        return
    configure(role, settings.log_format, settings.log_level)


def main(argv: list[str] | None = None) -> int:
    try:
        command = parser()
    except ModuleNotFoundError as exc:  # `pip install notify` has the clients only
        if (exc.name or "").split(".")[0] not in SERVER_EXTRA:
            raise
        print(
            f"notify: the command line needs the server's dependencies ({exc.name} is"
            " missing): pip install 'notify[server]'",
            file=sys.stderr,
        )
        return 2
    args = command.parse_args(argv)
    setup_logging(ROLES.get(args.command, args.command))
    warn_unknown(dict(os.environ))
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        print(f"notify: configuration error: {exc}", file=sys.stderr)
        return 2
    except NotifyError as exc:
        print(f"notify: {exc.detail}", file=sys.stderr)
        return 1
