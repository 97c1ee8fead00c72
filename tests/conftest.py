"""Fixtures shared by every test layer: real Redis servers, tokens, real gateways.

Every process a fixture starts is killed at teardown, whatever the test's outcome.
"""

from __future__ import annotations

import faulthandler
import os
import secrets
import sys
from collections.abc import Generator, Iterable, Iterator

import hypothesis
import pytest

from tests.support.factories import (
    GatewayFactory,
    ProcFactory,
    RedisFactory,
    TokenMaker,
    token_maker,
)
from tests.support.procs import Gateway, Proc
from tests.support.redis import Fsync, RedisServer

if os.environ.get("COVERAGE_PROCESS_START"):
    # `make coverage` traces every line: an example's run time then says nothing
    hypothesis.settings.register_profile("coverage", deadline=None)
    hypothesis.settings.load_profile("coverage")

# Dump every thread's stack when a test runs this long: before pytest-timeout (120 s in
# pyproject) fails it, so a hang shows where it hangs. An ini `faulthandler_timeout` wins.
FAULTHANDLER_TIMEOUT = 90.0
_dump_fd = pytest.StashKey[int]()
_failed = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    if not config.getini("faulthandler_timeout"):
        config.stash[_dump_fd] = os.dup(sys.__stderr__.fileno() if sys.__stderr__ else 2)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _dump_fd in config.stash:
        os.close(config.stash[_dump_fd])
        del config.stash[_dump_fd]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    fd = item.config.stash.get(_dump_fd, None)
    if fd is None:
        return (yield)
    faulthandler.dump_traceback_later(FAULTHANDLER_TIMEOUT, file=fd)
    try:
        return (yield)
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def redis_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisFactory]:
    """``redis_factory(appendonly=False, appendfsync="everysec", password=None)``: a
    started private ``redis-server``; all are killed at teardown."""
    servers: list[RedisServer] = []

    def make(
        *,
        appendonly: bool = False,
        appendfsync: Fsync = "everysec",
        password: str | None = None,
    ) -> RedisServer:
        server = RedisServer(
            tmp_path_factory.mktemp("redis"),
            appendonly=appendonly,
            appendfsync=appendfsync,
            password=password,
        )
        servers.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in servers:
            server.kill()


@pytest.fixture
def redis_server(redis_factory: RedisFactory) -> RedisServer:
    """A fresh, empty ``redis-server`` without persistence."""
    return redis_factory()


@pytest.fixture
def jwt_secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture
def make_token(jwt_secret: str) -> TokenMaker:
    """``make_token(sub="alice", publish=(), subscribe=(), admin=False, ttl=None)``: an
    HS256 token signed with ``jwt_secret``."""
    return token_maker(jwt_secret)


@pytest.fixture
def gateway_factory(
    request: pytest.FixtureRequest, jwt_secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayFactory]:
    """``gateway_factory(redis_url=None, **env)``: a started, ready ``notify serve`` on a
    free port. ``redis_url`` defaults to the ``redis_server`` fixture's; ``env`` adds
    variables (``NOTIFY_MAX_QUEUED=5``). All are killed at teardown."""
    gateways: list[Gateway] = []

    def make(redis_url: str | None = None, **env: object) -> Gateway:
        if redis_url is None:
            server: RedisServer = request.getfixturevalue("redis_server")
            redis_url = server.url
        gateway = Gateway(
            redis_url=redis_url,
            jwt_secret=jwt_secret,
            directory=tmp_path_factory.mktemp("gateway"),
            env=env,
            name=f"gateway{len(gateways)}",
        )
        gateways.append(gateway)
        return gateway.start()

    try:
        yield make
    finally:
        for gateway in gateways:
            gateway.kill()
        _dump_logs_on_failure(request, gateways)


@pytest.fixture
def gateway(gateway_factory: GatewayFactory) -> Gateway:
    """One gateway on ``redis_server``."""
    return gateway_factory()


@pytest.fixture
def proc_factory(
    request: pytest.FixtureRequest, jwt_secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcFactory]:
    """``proc_factory(*args, redis_url=None, **env)``: ``python -m notify *args`` started
    (not waited for) with ``NOTIFY_REDIS_URL`` (default: the ``redis_server`` fixture's),
    ``NOTIFY_JWT_SECRET`` and ``env``; e.g. ``proc_factory("dispatcher")``. All are
    killed at teardown."""
    procs: list[Proc] = []

    def make(*args: str, redis_url: str | None = None, **env: object) -> Proc:
        if redis_url is None:
            server: RedisServer = request.getfixturevalue("redis_server")
            redis_url = server.url
        name = f"{args[0] if args else 'notify'}{len(procs)}"
        proc = Proc(
            args,
            directory=tmp_path_factory.mktemp(name),
            env={"NOTIFY_REDIS_URL": redis_url, "NOTIFY_JWT_SECRET": jwt_secret, **env},
            name=name,
        )
        procs.append(proc)
        return proc.start()

    try:
        yield make
    finally:
        for proc in procs:
            proc.kill()
        _dump_logs_on_failure(request, procs)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_failed] = True
    return report


def _dump_logs_on_failure(request: pytest.FixtureRequest, procs: Iterable[Proc]) -> None:
    """Printed at teardown, so pytest shows the logs under the failing test."""
    if request.node.stash.get(_failed, False):
        for proc in procs:
            print(f"----- {proc.name} log (tail) -----\n{proc.log_tail()}")
