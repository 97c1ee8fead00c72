"""`notify dev`: its own Redis (data in .notify-dev/), gateway, dispatcher and a Celery
worker on one machine, with a generated secret and ready-to-use tokens.

It never writes into a Redis that belongs to something else unless told to: an existing
server is used only when ``NOTIFY_REDIS_URL`` names it, and the banner says which."""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from notify.auth import mint
from notify.cli.producer import expiry_note
from notify.settings import from_files
from notify.smtpurl import shown
from notify.supervise import Child, Supervisor

STATE_DIR = Path(".notify-dev")
TOKEN_TTL = 86400.0


def redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_redis(stack: Supervisor, port: int) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            "notify dev: redis-server is not installed; install it (apt-get install"
            " redis-server), or set NOTIFY_REDIS_URL to use a Redis you already run"
        )
    STATE_DIR.mkdir(exist_ok=True)
    # ignored by git wherever it is made, not only in notify's own repository
    (STATE_DIR / ".gitignore").write_text("*\n")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(STATE_DIR.resolve())]
    argv += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
    redis = stack.start(Child("redis", argv, stdout=subprocess.DEVNULL))
    for _ in range(100):
        if redis_answers("127.0.0.1", port):
            return
        if not redis.running():
            break
        time.sleep(0.05)
    redis.kill()
    raise SystemExit(f"notify dev: redis-server did not start on 127.0.0.1:{port}")


def origins_note(env: dict[str, str]) -> str:
    """The banner's line on which browser origins may call the gateway."""
    value = env["NOTIFY_CORS_ALLOW_LOOPBACK"]
    try:
        loopback = TypeAdapter(bool).validate_python(value)
    except ValidationError:
        loopback = False  # the gateway refuses the value and says why
    example = "NOTIFY_CORS_ORIGINS=https://app.example.com"
    if loopback:
        allowed = "pages on loopback origins (localhost, 127.0.0.1, [::1]; any port) are allowed"
        return f"origins   {allowed} in dev; in production list yours: {example}"
    off = f"loopback origins are off (NOTIFY_CORS_ALLOW_LOOPBACK={value})"
    return f"origins   {off}; allow an origin with {example}"


def run(port: int = 8000, workers: int = 1, *, redis_port: int | None = None) -> int:
    """Run the stack until SIGINT or SIGTERM, or until one of its processes exits.

    Without ``NOTIFY_REDIS_URL`` it starts its own redis-server on ``redis_port`` (a
    free port when None), its data in ``.notify-dev/``."""
    env = dict(os.environ)

    def exited(child: Child, why: str) -> None:
        print(f"notify dev: {child.name} {why}; stopping", flush=True)
        stack.stop(1)

    stack = Supervisor(exited, every=0.2, grace=10)
    if "NOTIFY_REDIS_URL" in env or "NOTIFY_REDIS_URL_FILE" in env:
        url = env.get("NOTIFY_REDIS_URL") or from_files(env)["redis_url"]
        redis_note = f"{shown(url)}   (an existing server, from NOTIFY_REDIS_URL)"
    else:
        rport = redis_port or _free_port()
        _start_redis(stack, rport)
        print(f"started redis-server on 127.0.0.1:{rport} (data in {STATE_DIR}/)")
        env["NOTIFY_REDIS_URL"] = f"redis://127.0.0.1:{rport}/0"
        redis_note = (
            f"{env['NOTIFY_REDIS_URL']}   (its own, data in {STATE_DIR}/;"
            " set NOTIFY_REDIS_URL to use another)"
        )
    secret = from_files(env).get("jwt_secret") or env.get("NOTIFY_JWT_SECRET")
    if not secret:
        secret = secrets.token_urlsafe(32)
        env["NOTIFY_JWT_SECRET"] = secret
    env.setdefault("NOTIFY_ALLOW_PRIVATE_TARGETS", "1")
    env.setdefault("NOTIFY_PUBLIC_URL", f"http://127.0.0.1:{port}")
    # a page from a local dev server (Vite on :5173, …) works out of the box; an explicit
    # NOTIFY_CORS_ALLOW_LOOPBACK wins, and NOTIFY_CORS_ORIGINS adds to it
    env.setdefault("NOTIFY_CORS_ALLOW_LOOPBACK", "true")
    mail_note = f"smtp      {shown(env.get('NOTIFY_SMTP_URL', 'smtp://localhost:25'))}"
    if "NOTIFY_SMTP_URL" not in env and importlib.util.find_spec("aiosmtpd") is not None:
        # a local SMTP server that prints every message here, so email subscriptions work
        smtp_port = _free_port()
        smtpd = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}"]
        stack.start(Child("smtp", smtpd, env))
        env["NOTIFY_SMTP_URL"] = f"smtp://127.0.0.1:{smtp_port}?starttls=false"
        mail_note = f"smtp      {env['NOTIFY_SMTP_URL']} (mail is printed here)"
    me = [sys.executable, "-m", "notify"]
    roles = [
        ("gateway", [*me, "serve", "--port", str(port)]),
        ("dispatcher", [*me, "dispatcher"]),
        ("worker", [*me, "worker", "--concurrency", str(max(1, workers) * 2)]),
    ]
    for name, argv in roles:
        stack.start(Child(name, argv, env))

    base = f"http://127.0.0.1:{port}"
    now = time.time()
    admin = mint(secret, "admin", publish=[">"], subscribe=[">"], admin=True, ttl=TOKEN_TTL)
    alice = mint(secret, "alice", publish=[">"], subscribe=[">"], ttl=TOKEN_TTL)
    print(
        f"""
notify dev is running
  gateway   {base}   (docs {base}/docs)
  redis     {redis_note}
  {mail_note}
  {origins_note(env)}
  secret    NOTIFY_JWT_SECRET={secret}

  these tokens {expiry_note(TOKEN_TTL, now).replace("expires", "expire", 1)};
  `notify token --sub NAME` mints more
  admin token:  {admin}
  alice token:  {alice}

  curl -N "{base}/v1/stream?channel=orders.>&token={alice}"
  curl -X POST {base}/v1/events -H "Authorization: Bearer {alice}" \\
       -H content-type:application/json \\
       -d '{{"channel":"orders.eu","type":"order.created","data":{{"order":17}}}}'
Ctrl-C stops everything.
""",
        flush=True,
    )

    return stack.run()


def cmd_dev(args: argparse.Namespace) -> int:
    return run(port=args.port, workers=args.workers)


def register(sub: Any) -> None:
    s = sub.add_parser("dev", help="the whole stack on this machine, no set-up")
    s.add_argument(
        "--port",
        type=int,
        default=8000,
        help="gateway port (default 8000; NOTIFY_PUBLIC_URL follows)",
    )
    s.add_argument(
        "--workers", type=int, default=1, help="Celery worker processes (per run, no variable)"
    )
    s.set_defaults(func=cmd_dev)
