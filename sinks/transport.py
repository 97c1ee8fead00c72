"""An httpx transport that refuses to connect to forbidden addresses.

The check runs inside the connection pool's network backend, on the very address the
socket connects to: the name is resolved once, every address it yields is checked,
and the socket goes to a checked address. No second lookup happens between check and
connect, so a DNS answer that changes (rebinding) cannot slip a private address in.
TLS still verifies the certificate against the host name in the URL.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

import anyio
import httpcore
import httpx

from notify import ssrf


class TargetRefused(httpcore.ConnectError):
    """The target resolves to an address webhooks may not reach."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def resolve(self, host: str, port: int) -> list[str]:
        literal = ssrf.parse(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            reason = ssrf.refusal(address, self._allow_private)
            if reason:
                # one bad address refuses the name: round-robin DNS must not be a lottery
                raise TargetRefused(f"refused to connect to {host}: {reason}")
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        last: Exception | None = None
        for address in await self.resolve(host, port):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, *, allow_private: bool, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx has no public hook for the network backend; the pool it built is
        # replaced by an identical one that connects through the guard
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private=allow_private),
        )
