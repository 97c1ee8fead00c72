"""``notify serve --workers N``: N gateway processes on one port, each restarted when it
dies, all stopped cleanly with the supervisor."""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.clients import publish
from tests.support.factories import TokenMaker
from tests.support.procs import Gateway, Proc
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


def _bind_plain(port: int) -> OSError | None:
    """What a bind without SO_REUSEPORT (any other server) gets on ``port``."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        return exc
    finally:
        sock.close()
    return None


def _refused(gw: Gateway, port: int) -> None:
    """``gw`` (not started) is spawned on ``port`` and must exit saying it is taken."""
    Proc.start(gw)  # the process alone: Gateway.start would wait for it to be ready
    assert gw.wait(20) == 1, gw.log_tail()
    log = gw.log_text()
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in log, log


def test_a_second_gateway_on_a_served_port_fails_instead_of_sharing_it(
    redis_server: RedisServer, jwt_secret: str, tmp_path: Path
) -> None:
    """A gateway started on a port another one serves must say so and exit: with
    SO_REUSEPORT it started fine and the kernel handed it a share of the first one's
    connections (a test's requests were reset when such a stranger was killed)."""
    first = Gateway(redis_url=redis_server.url, jwt_secret=jwt_secret, directory=tmp_path / "a")
    second = Gateway(
        redis_url=redis_server.url,
        jwt_secret=jwt_secret,
        directory=tmp_path / "b",
        port=first.port,
        name="second",
    )
    first.start()
    try:
        _refused(second, first.port)
        with httpx.Client(base_url=first.base_url, trust_env=False) as c:
            for _ in range(20):
                assert c.get("/readyz").status_code == 200
    finally:
        second.kill()
        first.kill()


def test_serve_workers_keep_their_port_to_themselves(
    redis_server: RedisServer, jwt_secret: str, tmp_path: Path
) -> None:
    """``serve --workers`` shares its port among its own workers only: another gateway,
    or another ``serve --workers``, on that port exits; and while every worker is down
    (the supervisor holds them back here with SIGSTOP) the port stays held."""
    gw = Gateway(
        redis_url=redis_server.url,
        jwt_secret=jwt_secret,
        directory=tmp_path / "workers",
        serve_args=("--workers", "2"),
    ).start()
    strangers = [
        Gateway(
            redis_url=redis_server.url,
            jwt_secret=jwt_secret,
            directory=tmp_path / name,
            port=gw.port,
            name=name,
            serve_args=args,
        )
        for name, args in (("lone", ()), ("pair", ("--workers", "2")))
    ]
    try:
        assert gw.pid is not None
        until(lambda: gw.log_text().count("Application startup complete") == 2, "two workers")
        for stranger in strangers:
            _refused(stranger, gw.port)
        os.kill(gw.pid, signal.SIGSTOP)
        try:
            for pid in children(gw.pid):
                os.kill(pid, signal.SIGKILL)
            until(
                lambda: all(
                    "zombie" in Path(f"/proc/{p}/status").read_text() for p in children(gw.pid)
                ),
                "both workers dead",
            )
            with pytest.raises(httpx.ConnectError):
                httpx.get(gw.url("/readyz"), trust_env=False, timeout=2)
            taken = _bind_plain(gw.port)
            assert taken is not None and taken.errno == errno.EADDRINUSE
        finally:
            os.kill(gw.pid, signal.SIGCONT)
        until(lambda: gw.log_text().count("Application startup complete") == 4, "new workers")
        with httpx.Client(base_url=gw.base_url, trust_env=False) as c:
            assert c.get("/readyz").status_code == 200
    finally:
        for stranger in strangers:
            stranger.kill()
        gw.kill()


def test_serve_workers_start_where_a_lone_gateway_left_connections_in_time_wait(
    redis_server: RedisServer, jwt_secret: str, tmp_path: Path
) -> None:
    """Going from one gateway to ``--workers 2`` on the same port at once: the lone
    gateway's closed connections linger in TIME_WAIT (it closed them first), and the
    port must still be taken."""
    lone = Gateway(redis_url=redis_server.url, jwt_secret=jwt_secret, directory=tmp_path / "a")
    lone.start()
    for _ in range(3):  # the server closes first: its side of each stays in TIME_WAIT
        with httpx.Client(base_url=lone.base_url, trust_env=False) as c:
            assert c.get("/healthz", headers={"connection": "close"}).status_code == 200
    lone.terminate()
    pair = Gateway(
        redis_url=redis_server.url,
        jwt_secret=jwt_secret,
        directory=tmp_path / "b",
        port=lone.port,
        serve_args=("--workers", "2"),
    )
    try:
        pair.start()
        with httpx.Client(base_url=pair.base_url, trust_env=False) as c:
            assert c.get("/readyz").status_code == 200
    finally:
        pair.kill()
