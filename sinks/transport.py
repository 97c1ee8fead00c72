"""An httpx transport that refuses to connect to forbidden addresses.

The check runs inside the connection pool's network backend, on the very address the
socket connects to: the name is resolved once, every address it yields is checked,
and the socket goes to a checked address. No second lookup happens between check and
connect, so a DNS answer that changes (rebinding) cannot slip a private address in.
TLS still verifies the certificate against the host name in the URL.
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
import httpcore
import httpx

from notify import ssrf


class TargetRefused(httpcore.ConnectError):
    """The target resolves to an address webhooks may not reach."""


async def checked_addresses(
    host: str, port: int, allow_private: bool, allowed: ssrf.AllowList = ssrf.NOTHING
) -> list[str]:
    """The addresses ``host`` resolves to, all of them allowed, or TargetRefused."""
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
        reason = ssrf.refusal(address, allow_private)
        if reason and not allowed.allows(host, address):
            # one bad address refuses the name: round-robin DNS must not be a lottery
            raise TargetRefused(f"refused to connect to {host}: {reason}")
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, *, allow_private: bool, allowed: ssrf.AllowList = ssrf.NOTHING) -> None:
        self._allow_private = allow_private
        self._allowed = allowed
        self._inner = httpcore.AnyIOBackend()

    async def resolve(self, host: str, port: int) -> list[str]:
        return await checked_addresses(host, port, self._allow_private, self._allowed)

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
    def __init__(
        self,
        *,
        allow_private: bool,
        limits: httpx.Limits,
        allowed: ssrf.AllowList = ssrf.NOTHING,
    ) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx has no public hook for the network backend; the pool it built is
        # replaced by an identical one that connects through the guard
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private=allow_private, allowed=allowed),
        )


class ProtocolError(Exception):
    """The receiver's answer is not HTTP/1.1 this client can read."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; the first of repeated fields
    body: bytes  # at most the cap the request asked for


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
    """A lean HTTP/1.1 client for webhook POSTs: keep-alive connections per origin.

    httpx with httpcore spent several milliseconds of CPU per request here, most of it
    scanning every pooled connection on each request and in anyio's stream layers;
    this does the one thing webhooks need on plain asyncio streams. Connections go
    only to addresses ``checked_addresses`` allowed (the address connected to is the
    address checked), redirects are answers like any other, at most ``max_read``
    bytes of a body are read (a connection whose answer was not read whole is closed,
    never reused), and the caller bounds the whole exchange with one deadline.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        max_connections: int,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        allowed: ssrf.AllowList = ssrf.NOTHING,
    ) -> None:
        self._allow_private = allow_private
        self._allowed = allowed
        self._expiry = keepalive_expiry
        self._ssl = ssl_context
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
                except (_Stale, ConnectionError):
                    pass  # closed by the receiver as it was reused: once more, afresh
            conn = await self._connect(origin)
            try:
                return await self._exchange(origin, conn, request, max_read)
            except _Stale as exc:
                raise ProtocolError("the receiver closed the connection without answering") from exc

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
        for address in await checked_addresses(
            origin.host, origin.port, self._allow_private, self._allowed
        ):
            try:
                reader, writer = await self._open(
                    address,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context else None,
                    limit=MAX_HEAD,
                )
            except OSError as exc:
                last = exc
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return _Connection(reader, writer)
        assert last is not None
        raise httpcore.ConnectError(f"cannot connect to {origin.host}:{origin.port}: {last}")

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
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


class _Stale(Exception):
    """A reused connection ended before any byte of an answer."""


MAX_HEAD = 64 * 1024
_CHUNK_LINE = 1024


async def read_answer(reader: asyncio.StreamReader, max_read: int) -> tuple[Answer, bool]:
    """One response (after any 1xx) and whether the connection may carry another."""
    first = True
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if first and not exc.partial:
                raise _Stale from exc
            raise ProtocolError("the connection closed in the middle of the answer") from exc
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError(f"answer headers longer than {MAX_HEAD} bytes") from exc
        first = False
        status, headers, keep = parse_head(head)
        if not 100 <= status < 200:
            break
    if status in (204, 304):
        return Answer(status, headers, b""), keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, whole = await read_chunked(reader, max_read)
        return Answer(status, headers, body), keep and whole
    length = headers.get("content-length")
    if length is None:
        # delimited by the end of the connection: read what the cap allows, then close
        body = await read_some(reader, max_read)
        return Answer(status, headers, body), False
    try:
        size = int(length.split(",")[0])
    except ValueError as exc:
        raise ProtocolError(f"bad content-length {length[:40]!r}") from exc
    if size < 0:
        raise ProtocolError(f"bad content-length {length[:40]!r}")
    body = await read_some(reader, min(size, max_read))
    return Answer(status, headers, body), keep and size <= max_read and len(body) == size


def parse_head(head: bytes) -> tuple[int, dict[str, str], bool]:
    lines = head[:-4].decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1."):
        raise ProtocolError(f"not an HTTP/1.x answer: {lines[0][:60]!r}")
    try:
        status = int(status_line[1])
    except ValueError as exc:
        raise ProtocolError(f"bad status {status_line[1][:20]!r}") from exc
    if not 100 <= status <= 999:
        raise ProtocolError(f"bad status {status}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"bad header line {line[:60]!r}")
        headers.setdefault(name.strip().lower(), value.strip())
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection and (
        status_line[0] != "HTTP/1.0" or "keep-alive" in connection
    )
    return status, headers, keep


async def read_some(reader: asyncio.StreamReader, size: int) -> bytes:
    """Up to ``size`` bytes, fewer if the connection ends first."""
    got = bytearray()
    while len(got) < size:
        chunk = await reader.read(size - len(got))
        if not chunk:
            break
        got += chunk
    return bytes(got)


async def read_chunked(reader: asyncio.StreamReader, max_read: int) -> tuple[bytes, bool]:
    """The body up to ``max_read`` bytes, and whether it was read to its end."""
    got = bytearray()
    try:
        while True:
            line = await reader.readuntil(b"\r\n")
            if len(line) > _CHUNK_LINE:
                raise ProtocolError("chunk size line too long")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise ProtocolError(f"bad chunk size {line[:20]!r}") from exc
            if size == 0:
                # trailers, if any, end with an empty line
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return bytes(got), True
            if len(got) + size > max_read:
                got += await read_some(reader, max_read - len(got))
                return bytes(got), False
            got += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return bytes(got), False


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
