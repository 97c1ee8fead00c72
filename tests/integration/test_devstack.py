"""`notify dev` (what `make run` starts): the whole stack with no set-up."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time

import httpx

from tests.support.ports import free_port
from tests.support.procs import child_env
from tests.support.redis import RedisServer


def test_notify_dev_runs_the_stack_and_prints_working_tokens(
    redis_server: RedisServer, tmp_path: object
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "notify", "dev", "--port", str(port)],
        env=child_env({"NOTIFY_REDIS_URL": redis_server.url}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        cwd=str(tmp_path),
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
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            r = client.post(
                "/v1/events",
                json={"channel": "dev", "type": "t", "data": 1},
                headers={"Authorization": f"Bearer {token.group(1)}"},
            )
            assert r.status_code == 202, r.text
            r = client.post(
                "/v1/subscriptions",
                json={"channel": "dev", "sink": {"kind": "web"}},
                headers={"Authorization": f"Bearer {token.group(1)}"},
            )
            assert r.status_code == 201, r.text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(30)
        finally:
            import os

            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.stdout is not None:
                proc.stdout.close()
    assert code == 0, output
