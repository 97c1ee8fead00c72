"""`notify dev`: Redis (started here when none answers), gateway, dispatcher and a
Celery worker on one machine, with a generated secret and ready-to-use tokens."""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from notify.auth import mint
from notify.smtpurl import shown

STATE_DIR = Path(".notify-dev")
DEFAULT_REDIS_PORT = 6379


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


def _start_redis(port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            f"notify dev: no Redis answers on localhost:{port} and redis-server is not"
            " installed; install it (apt-get install redis-server) or set NOTIFY_REDIS_URL"
        )
    STATE_DIR.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(STATE_DIR.resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        if redis_answers("127.0.0.1", port):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise SystemExit(f"notify dev: redis-server did not start on 127.0.0.1:{port}")


def run(port: int = 8000, workers: int = 1, *, redis_port: int = DEFAULT_REDIS_PORT) -> int:
    """Run the stack until SIGINT or SIGTERM, or until one of its processes exits.

    ``redis_port`` is where Redis is looked for, and started when nothing answers
    there and ``NOTIFY_REDIS_URL`` is unset (the CLI always uses Redis's default)."""
    env = dict(os.environ)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    if "NOTIFY_REDIS_URL" not in env and not redis_answers("127.0.0.1", redis_port):
        children.append(("redis", _start_redis(redis_port)))
        print(f"started redis-server on 127.0.0.1:{redis_port} (data in {STATE_DIR}/)")
        env["NOTIFY_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    env.setdefault("NOTIFY_REDIS_URL", f"redis://localhost:{redis_port}/0")
    secret = env.get("NOTIFY_JWT_SECRET") or secrets.token_urlsafe(32)
    env["NOTIFY_JWT_SECRET"] = secret
    env.setdefault("NOTIFY_ALLOW_PRIVATE_TARGETS", "1")
    env.setdefault("NOTIFY_PUBLIC_URL", f"http://127.0.0.1:{port}")
    mail_note = f"smtp      {shown(env.get('NOTIFY_SMTP_URL', 'smtp://localhost:25'))}"
    if "NOTIFY_SMTP_URL" not in env and importlib.util.find_spec("aiosmtpd") is not None:
        # a local SMTP server that prints every message here, so email subscriptions work
        smtp_port = _free_port()
        children.append(
            (
                "smtp",
                subprocess.Popen(
                    [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}"],
                    env=env,
                ),
            )
        )
        env["NOTIFY_SMTP_URL"] = f"smtp://127.0.0.1:{smtp_port}?starttls=false"
        mail_note = f"smtp      {env['NOTIFY_SMTP_URL']} (mail is printed here)"
    me = [sys.executable, "-m", "notify"]
    roles = [
        ("gateway", [*me, "serve", "--port", str(port)]),
        ("dispatcher", [*me, "dispatcher"]),
        ("worker", [*me, "worker", "--concurrency", str(max(1, workers) * 2)]),
    ]
    for name, argv in roles:
        children.append((name, subprocess.Popen(argv, env=env)))

    base = f"http://127.0.0.1:{port}"
    admin = mint(secret, "admin", publish=[">"], subscribe=[">"], admin=True)
    alice = mint(secret, "alice", publish=[">"], subscribe=[">"])
    print(
        f"""
notify dev is running
  gateway   {base}   (docs {base}/docs)
  redis     {env["NOTIFY_REDIS_URL"]}
  {mail_note}
  secret    NOTIFY_JWT_SECRET={secret}

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

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for name, proc in children:
            if proc.poll() is not None:
                print(f"notify dev: {name} exited with {proc.returncode}; stopping", flush=True)
                stopping, code = True, 1
                break
        time.sleep(0.2)
    for _, proc in reversed(children):
        if proc.poll() is None:
            proc.terminate()
    for _, proc in reversed(children):
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return code
