"""Call signatures of the factory fixtures in ``tests/conftest.py``, for annotations:

def test_x(gateway_factory: GatewayFactory, make_token: TokenMaker) -> None: ...
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from notify.auth import mint
from tests.support.procs import Gateway, Proc
from tests.support.redis import Fsync, RedisServer


class TokenMaker(Protocol):
    def __call__(
        self,
        sub: str = "alice",
        publish: Iterable[str] = (),
        subscribe: Iterable[str] = (),
        admin: bool = False,
        ttl: float | None = None,
    ) -> str: ...


def token_maker(secret: str) -> TokenMaker:
    """The ``make_token`` of a test: HS256 tokens signed with ``secret``."""

    def make(
        sub: str = "alice",
        publish: Iterable[str] = (),
        subscribe: Iterable[str] = (),
        admin: bool = False,
        ttl: float | None = None,
    ) -> str:
        return mint(secret, sub, publish=publish, subscribe=subscribe, admin=admin, ttl=ttl)

    return make


class GatewayFactory(Protocol):
    def __call__(self, redis_url: str | None = None, **env: object) -> Gateway: ...


class ProcFactory(Protocol):
    def __call__(self, *args: str, redis_url: str | None = None, **env: object) -> Proc: ...


class RedisFactory(Protocol):
    def __call__(
        self,
        *,
        appendonly: bool = False,
        appendfsync: Fsync = "everysec",
        password: str | None = None,
    ) -> RedisServer: ...
