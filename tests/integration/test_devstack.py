"""`notify dev` (what `make run` starts): the whole stack with no set-up."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from notify.cli.dev import redis_answers
from tests.support.ports import free_port
from tests.support.procs import child_env
from tests.support.redis import RedisServer
from tests.support.system import ensure_binary


@dataclass
class Dev:
    output: str
    client: httpx.Client
    token: str

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return self.client.request(method, path, headers=headers, **kwargs)


@contextlib.contextmanager
def dev_stack(argv: list[str], port: int, env: dict[str, str], cwd: Path) -> Iterator[Dev]:
    """Run the stack until it prints its tokens and the gateway is ready; on leaving,
    stop it the way Ctrl-C does and check it ended cleanly."""
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        cwd=str(cwd),
    )
    output = ""
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while "alice token:" not in output and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output += line
        token = re.search(r"alice token:\s+(\S+)", output)
        assert token, output
        base = f"http://127.0.0.1:{port}"
        assert base in output and "NOTIFY_JWT_SECRET=" in output
        with httpx.Client(base_url=base, trust_env=False, timeout=5) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/readyz").status_code == 200:
                        break
                time.sleep(0.1)
            yield Dev(output, client, token.group(1))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.stdout is not None:
                proc.stdout.close()
    assert code == 0, output


PAGE = "http://127.0.0.1:5173"  # a page from a front-end dev server on this machine
ORIGINS_ON = (
    "origins   pages on loopback origins (localhost, 127.0.0.1, [::1]; any port) are allowed"
    " in dev; in production list yours: NOTIFY_CORS_ORIGINS=https://app.example.com"
)


def cors_for(dev: Dev, origin: str) -> tuple[str | None, str | None]:
    """``access-control-allow-origin`` of a preflight for a publish, and of a GET."""
    r = dev.client.options(
        "/v1/events",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    preflight = r.headers.get("access-control-allow-origin")
    r = dev.client.get(
        "/v1/events",
        params={"channel": "dev"},
        headers={"Authorization": f"Bearer {dev.token}", "Origin": origin},
    )
    assert r.status_code == 200, r.text
    return preflight, r.headers.get("access-control-allow-origin")


def test_notify_dev_runs_the_stack_and_prints_working_tokens(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "notify", "dev", "--port", str(port)]
    env = child_env({"NOTIFY_REDIS_URL": redis_server.url})
    with dev_stack(argv, port, env, tmp_path) as dev:
        r = dev.call("POST", "/v1/events", json={"channel": "dev", "type": "t", "data": 1})
        assert r.status_code == 202, r.text
        r = dev.call("POST", "/v1/subscriptions", json={"channel": "dev", "sink": {"kind": "web"}})
        assert r.status_code == 201, r.text
        # dev allows loopback origins: a page on another local port works out of the box
        assert cors_for(dev, PAGE) == (PAGE, PAGE)
        assert cors_for(dev, "http://localhost.evil.com:5173") == (None, None)
    assert ORIGINS_ON in dev.output
    assert "started redis-server" not in dev.output
    assert f"{redis_server.url}   (an existing server, from NOTIFY_REDIS_URL)" in dev.output
    assert re.search(r"these tokens expire \S+Z \(in 1 day\)", dev.output), dev.output


def test_notify_dev_starts_redis_when_none_answers_and_keeps_its_data(tmp_path: Path) -> None:
    """With NOTIFY_REDIS_URL unset and nothing on the Redis port, `notify dev` starts its
    own redis-server (append-only file in .notify-dev/), stops it with the stack, and
    the next run finds the events of the last one. The CLI looks on 6379; the test
    calls the same function with a free port, so as not to meet a Redis already there."""
    ensure_binary("redis-server", "redis-server")
    port, redis_port = free_port(), free_port()
    assert not redis_answers("127.0.0.1", redis_port)
    launch = (
        f"from notify.cli.dev import run; raise SystemExit(run({port}, redis_port={redis_port}))"
    )
    argv = [sys.executable, "-c", launch]
    with dev_stack(argv, port, child_env(), tmp_path) as dev:
        assert f"started redis-server on 127.0.0.1:{redis_port}" in dev.output
        assert f"redis://127.0.0.1:{redis_port}/0   (its own, data in .notify-dev/" in dev.output
        r = dev.call("POST", "/v1/events", json={"channel": "dev", "type": "t", "data": 1})
        assert r.status_code == 202, r.text
        event_id = r.json()["id"]
    assert not redis_answers("127.0.0.1", redis_port), "redis-server outlived the stack"
    assert list((tmp_path / ".notify-dev").rglob("*.aof"))
    assert (tmp_path / ".notify-dev" / ".gitignore").read_text() == "*\n"

    with dev_stack(argv, port, child_env(), tmp_path) as again:
        r = again.call("GET", "/v1/events", params={"channel": "dev"})
        assert r.status_code == 200, r.text
        assert [e["id"] for e in r.json()["events"]] == [event_id]


def test_notify_dev_leaves_loopback_origins_off_when_told(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """An explicit ``NOTIFY_CORS_ALLOW_LOOPBACK`` wins over dev's default, and the banner
    says so; ``NOTIFY_CORS_ORIGINS`` still works."""
    port = free_port()
    argv = [sys.executable, "-m", "notify", "dev", "--port", str(port)]
    env = child_env(
        {
            "NOTIFY_REDIS_URL": redis_server.url,
            "NOTIFY_CORS_ALLOW_LOOPBACK": "false",
            "NOTIFY_CORS_ORIGINS": "https://app.example.com",
        }
    )
    with dev_stack(argv, port, env, tmp_path) as dev:
        assert cors_for(dev, PAGE) == (None, None)
        app = "https://app.example.com"
        assert cors_for(dev, app) == (app, app)
    assert ORIGINS_ON not in dev.output
    assert (
        "origins   loopback origins are off (NOTIFY_CORS_ALLOW_LOOPBACK=false); allow an origin"
        " with NOTIFY_CORS_ORIGINS=https://app.example.com"
    ) in dev.output
