"""The sinks' one HTTP client: keep-alive POSTs that connect only where the guard allows.

httpx with httpcore spent several milliseconds of CPU per request here, most of it
scanning every pooled connection on each request and in anyio's stream layers; this
does the one thing webhooks and Alertmanager need on plain asyncio streams, with
httptools (llhttp, the parser uvicorn uses) reading the answers.

The SSRF guard runs on the address the socket connects to: a name is resolved once,
every address it yields is checked, and the socket goes to a checked address, so a DNS
answer that changes between check and connect (rebinding) cannot slip a private address
in. With an egress proxy the guard still applies to the final target: the proxy is asked
to CONNECT to the checked address, never to a name it would resolve itself. TLS verifies
the certificate against the host name in the URL either way. Redirects are answers like
any other, at most ``max_read`` bytes of a body are read (a connection whose answer was
not read whole is closed, never reused), and the caller bounds the whole exchange with
one deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import anyio

from notify import ssrf
from notify.proxy import Proxy
from notify.sinks.answers import (
    MAX_HEAD,
    Answer,
    ConnectFailed,
    HttpClientError,
    ProtocolError,
    Stale,
    TargetRefused,
    read_answer,
    read_head,
)

__all__ = [
    "Answer",
    "ConnectFailed",
    "HttpClientError",
    "HttpPool",
    "ProtocolError",
    "Proxy",
    "TargetRefused",
    "checked_addresses",
]


async def checked_addresses(
    host: str, port: int, allow_private: bool, allowed: ssrf.AllowList = ssrf.NOTHING
) -> list[str]:
    """The addresses ``host`` resolves to, all of them allowed (by the guard or by
    ``NOTIFY_ALLOWED_PRIVATE_TARGETS``), or TargetRefused."""
    literal = ssrf.parse(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConnectFailed(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        reason = ssrf.refusal(address, allow_private)
        if reason and not allowed.allows(host, address):
            # one bad address refuses the name: round-robin DNS must not be a lottery
            raise TargetRefused(f"refused to connect to {host}: {reason}")
    return addresses


@dataclass(frozen=True, slots=True)
class Origin:
    key: str  # scheme://host:port, the pool key
    scheme: str
    host: str  # as resolved and verified by TLS (IDNA-encoded)
    port: int
    head: bytes  # "POST {target} HTTP/1.1" and the Host field, CRLF-terminated


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self, now: float, expiry: float) -> bool:
        # a receiver that closed an idle connection has already fed EOF to the reader
        return (
            now - self.idle_since < expiry
            and not self.reader.at_eof()
            and not self.writer.transport.is_closing()
        )

    def close(self) -> None:
        self.writer.transport.abort()


class HttpPool:
    """Keep-alive HTTP/1.1 connections per origin, for POSTs with a capped answer."""

    def __init__(
        self,
        *,
        allow_private: bool,
        max_connections: int,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        proxy: Proxy | None = None,
        allowed: ssrf.AllowList = ssrf.NOTHING,
    ) -> None:
        self._allow_private = allow_private
        self._allowed = allowed
        self._expiry = keepalive_expiry
        self._ssl = ssl_context
        self._proxy = proxy
        self._idle: dict[str, list[_Connection]] = {}
        self._idle_count = 0
        self._max_idle = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._origins: dict[str, Origin] = {}
        self._open = asyncio.open_connection  # tests wrap it to see where sockets go

    def origin(self, url: str) -> Origin:
        found = self._origins.get(url)
        if found is None:
            if len(self._origins) > 10_000:
                self._origins.clear()
            found = self._origins[url] = parse_origin(url)
        return found

    async def post(
        self, url: str, fields: Iterable[tuple[str, str]], body: bytes, max_read: int
    ) -> Answer:
        origin = self.origin(url)
        parts = [origin.head]
        for name, value in fields:
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name} holds a line break")
            parts.append(f"{name}: {value}\r\n".encode("latin-1"))
        parts.append(b"content-length: %d\r\n\r\n" % len(body))
        request = b"".join(parts) + body
        async with self._slots:
            conn = self._take(origin.key)
            if conn is not None:
                try:
                    return await self._exchange(origin, conn, request, max_read)
                except (Stale, ConnectionError):
                    pass  # closed by the receiver as it was reused: once more, afresh
            conn = await self._connect(origin)
            try:
                return await self._exchange(origin, conn, request, max_read)
            except Stale as exc:
                raise ProtocolError("the receiver closed the connection without answering") from exc
            except ConnectionError as exc:
                raise ConnectFailed(f"the connection failed: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        self._idle_count = 0

    def _take(self, key: str) -> _Connection | None:
        conns = self._idle.get(key)
        if conns is None:
            return None
        now = time.monotonic()
        found = None
        while conns:
            conn = conns.pop()
            self._idle_count -= 1
            if conn.usable(now, self._expiry):
                found = conn
                break
            conn.close()
        if not conns:
            del self._idle[key]  # no empty sets left behind by targets seen once
        return found

    def _give_back(self, key: str, conn: _Connection) -> None:
        if self._idle_count >= self._max_idle:
            # full: drop the longest idle connection of the biggest idle set
            key_ = max(self._idle, key=lambda k: len(self._idle[k]))
            self._idle[key_].pop(0).close()
            self._idle_count -= 1
            if not self._idle[key_]:
                del self._idle[key_]
        conn.idle_since = time.monotonic()
        self._idle.setdefault(key, []).append(conn)
        self._idle_count += 1

    async def _connect(self, origin: Origin) -> _Connection:
        last: Exception | None = None
        context = self._tls() if origin.scheme == "https" else None
        checked = await checked_addresses(
            origin.host, origin.port, self._allow_private, self._allowed
        )
        for address in checked:
            try:
                if self._proxy is not None:
                    conn = await self._tunnel(self._proxy, address, origin.port)
                    if context is not None:
                        await conn.writer.start_tls(context, server_hostname=origin.host)
                else:
                    reader, writer = await self._open(
                        address,
                        origin.port,
                        ssl=context,
                        server_hostname=origin.host if context else None,
                        limit=MAX_HEAD,
                    )
                    conn = _Connection(reader, writer)
            except (OSError, ConnectFailed) as exc:
                last = exc
                continue
            sock = conn.writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return conn
        raise ConnectFailed(f"cannot connect to {origin.host}:{origin.port}: {last}") from last

    async def _tunnel(self, proxy: Proxy, address: str, port: int) -> _Connection:
        """A connection through the proxy to the checked ``address``."""
        reader, writer = await self._open(proxy.host, proxy.port, limit=MAX_HEAD)
        authority = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n"
        if proxy.authorization:
            head += f"proxy-authorization: {proxy.authorization}\r\n"
        conn = _Connection(reader, writer)
        try:
            writer.write(head.encode("latin-1") + b"\r\n")
            await writer.drain()
            status = await read_head(reader)
        except BaseException:
            conn.close()
            raise
        if not 200 <= status < 300:
            conn.close()
            raise ConnectFailed(f"the egress proxy refused the tunnel: HTTP {status}")
        return conn

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _exchange(
        self, origin: Origin, conn: _Connection, request: bytes, max_read: int
    ) -> Answer:
        reusable = False
        try:
            conn.writer.write(request)
            await conn.writer.drain()
            answer, reusable = await read_answer(conn.reader, max_read)
            return answer
        finally:
            if reusable:
                self._give_back(origin.key, conn)
            else:
                conn.close()


def parse_origin(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url[:80]!r}")
    host = parts.hostname
    if ssrf.parse(host) is None:
        host = ssrf.ascii_name(host)
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    authority = f"[{host}]" if ":" in host else host
    if port != default:
        authority += f":{port}"
    target = quote(parts.path or "/", safe=_SAFE) + (
        "?" + quote(parts.query, safe=_SAFE) if parts.query else ""
    )
    head = f"POST {target} HTTP/1.1\r\nhost: {authority}\r\n".encode("ascii")
    return Origin(f"{scheme}://{host}:{port}", scheme, host, port, head)


# everything printable but space: what is already escaped stays as it is
_SAFE = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
