"""``notify serve --workers N``: N gateway processes on one port, each restarted when it
dies, all stopped cleanly with the supervisor."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.integration.clients import publish
from tests.support.factories import TokenMaker
from tests.support.procs import Gateway
from tests.support.redis import RedisServer


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_serve_runs_and_restarts_its_workers(
    redis_server: RedisServer, make_token: TokenMaker, jwt_secret: str, tmp_path: Path
) -> None:
    gw = Gateway(
        redis_url=redis_server.url,
        jwt_secret=jwt_secret,
        directory=tmp_path,
        serve_args=("--workers", "2"),
    ).start()
    try:
        assert gw.pid is not None
        until(lambda: gw.log_text().count("Application startup complete") == 2, "two workers")
        first = children(gw.pid)
        assert len(first) == 2
        token = make_token(publish=[">"], subscribe=[">"])
        assert publish(gw.base_url, token, "w")
        os.kill(first[0], signal.SIGKILL)
        until(lambda: "restarting" in gw.log_text(), "the restart")
        until(lambda: gw.log_text().count("Application startup complete") == 3, "a new worker")
        now = children(gw.pid)
        assert len(now) == 2 and first[1] in now and first[0] not in now
        with httpx.Client(base_url=gw.base_url, trust_env=False) as c:
            for _ in range(10):  # whichever worker the kernel picks answers
                assert c.get("/readyz").status_code == 200
        gw.kill(signal.SIGTERM)
        assert gw.wait(20) == 0, gw.log_tail()
        for pid in now:
            assert (
                not Path(f"/proc/{pid}").exists()
                or "zombie" in Path(f"/proc/{pid}/status").read_text()
            )
    finally:
        gw.kill()
