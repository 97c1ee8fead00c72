"""uvicorn's protocols with what a gateway needs from them: for HTTP, three things;
for WebSocket, a quiet refusal (:class:`GatewayWebSocketProtocol`). Written against
uvicorn 0.55's httptools protocol (pinned in pyproject.toml).

**Caps on a request's head.** Neither uvicorn nor httptools limits header fields: one
connection could send 100 MiB of headers and be answered. A head (request line and
header fields) over ``max_head_bytes``, or with more than ``max_headers`` fields,
gets ``431`` and the connection is closed; bytes are counted as they arrive, so a
head that never ends is refused as soon as it is too long.

**A deadline for reading a request.** uvicorn times out idle keep-alive connections
but not a request that arrives a byte at a time (slowloris): each such client would
hold a descriptor and a parser for as long as it keeps trickling. Here a request must
be read whole, headers and body, within ``read_timeout`` seconds of the connection
becoming ready for it; one timer per process sweeps every connection once a second
(no timer per request on the hot path). An expired request gets ``408`` and the
connection is closed; a response already under way is simply cut.

**A synchronous write for event streams.** An event delivered to a thousand streams
would otherwise wake a thousand tasks, each to pass one ASGI message through
uvicorn's ``send``. The hub instead writes a chunk straight to the transport when
nothing is queued for that connection and the transport is not applying
back-pressure (:meth:`GatewayProtocol.write_chunk`); everything else takes the ASGI path, so order
and flow control are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from notify.errors import PROBLEM_BASE, HeadersTooLarge, RequestTimeout

STREAM_PATH = "/v1/stream"
STREAM_PATHS = (STREAM_PATH, "/v1/feed")
ABORT = "notify.abort"
"""The scope key under which an event stream finds :meth:`GatewayProtocol.abort`."""
DIRECT = "notify.direct"
"""The scope key under which an event stream finds :meth:`GatewayProtocol.write_chunk`
(a bare key, not an ``extensions`` entry: two dicts per idle stream is memory that
bench c counts)."""

now = time.monotonic


def timeout_response(problem_base: str) -> bytes:
    body = b'{"type":"%s","title":"%s","status":%d,"detail":"%s"}' % (
        (problem_base + RequestTimeout.code).encode(),
        RequestTimeout.title.encode(),
        RequestTimeout.status,
        b"the request was not received in time",
    )
    return (
        b"HTTP/1.1 408 Request Timeout\r\n"
        b"content-type: application/problem+json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


def too_large_response(problem_base: str) -> bytes:
    """The 431 a head over the caps gets (its problem ``type`` under ``problem_base``)."""
    error = HeadersTooLarge("the request's header fields are over the size or count limit")
    body = b'{"type":"%s","title":"%s","status":%d,"detail":"%s"}' % (
        (problem_base + error.code).encode(),
        error.title.encode(),
        error.status,
        error.detail.encode(),
    )
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/problem+json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
    )


def reset(transport: asyncio.Transport) -> None:
    """Close a connection with a TCP reset: what the kernel still buffers for a peer that
    stopped reading is dropped with it. ``abort()`` alone drops only asyncio's buffer;
    the kernel would go on offering its own (megabytes) to the peer for minutes."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a head over the caps."""


_last_data: bytes = b""
_last_chunk: bytes = b""


class GatewayProtocol(HttpToolsProtocol):
    read_timeout = 10.0
    """Set by ``notify serve`` from ``NOTIFY_REQUEST_TIMEOUT_SECONDS``."""

    max_head_bytes = 32 * 1024
    max_headers = 100
    """Set by ``notify serve`` from ``NOTIFY_MAX_HEADER_BYTES`` / ``NOTIFY_MAX_HEADERS``."""
    timeout_answer = timeout_response(PROBLEM_BASE)
    too_large_answer = too_large_response(PROBLEM_BASE)
    """Both set by ``notify serve`` for ``NOTIFY_PROBLEM_BASE_URL``."""

    # Slots, not the instance dict: uvicorn's protocol sets 29 attributes, and a 30th
    # reaches CPython's limit for instance dicts that share their keys (3.11:
    # SHARED_KEYS_MAX_SIZE = 30), so each connection got a dict of its own: 1.5 KiB more
    # per idle stream (bench c).
    __slots__ = ("head_bytes", "reading_since")

    reading_since: float
    """When this connection began waiting for the request it is reading; 0 when none."""

    head_bytes: int
    """Bytes received since the current request's head began; -1 once it is complete."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.head_bytes = 0
        super().connection_made(transport)
        self.reading_since = now()
        _sweeper(self.loop, self.connections)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with the head caps (a cap hit in a parser callback stops parsing
        with :class:`_HeadRefused`, which httptools hands back as a callback error)."""
        if self.head_bytes >= 0:
            self.head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadRefused):
                self.refuse_head()
                return
            self._invalid_request()
            return
        except httptools.HttpParserError:
            self._invalid_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        if self.head_bytes > self.max_head_bytes:
            self.refuse_head()

    def _invalid_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    def refuse_head(self) -> None:
        self.head_bytes = -1
        self.reading_since = 0.0
        if not self.transport.is_closing():
            self.transport.write(GatewayProtocol.too_large_answer)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.head_bytes < 0:
            self.head_bytes = 0
        if not self.reading_since:
            self.reading_since = now()

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self.max_headers:
            raise _HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.max_head_bytes:
            raise _HeadRefused
        self.head_bytes = -1
        super().on_headers_complete()
        if self.pipeline or "path" not in self.scope:
            # queued behind a response (reading is paused), or a WebSocket upgrade
            self.reading_since = 0.0
        elif self.scope["path"] in STREAM_PATHS:
            self.scope[ABORT] = self.abort  # type: ignore[literal-required]
            if self.scope["path"] == STREAM_PATH:
                self.scope[DIRECT] = self.write_chunk  # type: ignore[literal-required]

    def abort(self) -> None:
        """Drop the connection at once, unsent data and all: for a stream whose peer
        stopped reading (a graceful end would wait on it, then count as an app error);
        the client resumes from its last id."""
        if self.cycle is not None:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        reset(self.transport)

    def write_chunk(self, data: bytes) -> bool:
        """Write one chunk of the response under way now, or say it cannot (the caller
        then queues the data for the ASGI path). Only once uvicorn has begun the
        response, chunked, and while the transport is not applying back-pressure."""
        global _last_data, _last_chunk
        if self.flow.write_paused or self.transport.is_closing():
            return False
        cycle = self.cycle
        if cycle.disconnected or cycle.response_complete or not cycle.chunked_encoding:
            return False  # (chunked_encoding is None until the response has begun)
        if data is not _last_data:
            # the same event goes to many streams: frame it as a chunk once
            _last_data, _last_chunk = data, b"%x\r\n%b\r\n" % (len(data), data)
        self.transport.write(_last_chunk)
        return True

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.head_bytes = 0  # the next request's head may follow at once
        if self.cycle is None or not self.cycle.response_complete:
            # (a request answered before its body was read, e.g. 401 or 413, keeps the
            # deadline armed when the response completed: nothing else would end it)
            self.reading_since = 0.0

    def on_response_complete(self) -> None:
        queued = bool(self.pipeline)
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.timeout_keep_alive_task is not None:
            # idle, waiting for the next request: uvicorn's keep-alive timeout ends a
            # silent peer; this deadline ends one that trickles bytes
            self.reading_since = now()
        elif queued and self.cycle is not None and self.cycle.more_body:
            # a pipelined request now started, its body still to come (reading resumes)
            self.reading_since = now()

    def expire(self) -> None:
        """The request was not read in time."""
        self.reading_since = 0.0
        if self.timeout_keep_alive_task is not None:
            # idle since its last response with not a byte received (any byte cancels
            # the keep-alive timer): no request is late, and a 408 would reach a client
            # that asked nothing; uvicorn's keep-alive timeout closes it quietly, and
            # a first byte arms the deadline again (on_message_begin)
            return
        transport = self.transport
        if transport.is_closing():
            return
        cycle = self.cycle
        if self.pipeline:
            pass  # responses are still due on this connection: a 408 would interleave
        elif cycle is None or cycle.response_complete or not cycle.response_started:
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # the app waiting for the body gives up
                cycle.message_event.set()
            transport.write(GatewayProtocol.timeout_answer)
        transport.close()


_SWEEPERS: dict[int, Any] = {}


def _sweeper(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
    """One repeating timer per loop that expires slow requests on every connection."""
    if id(loop) in _SWEEPERS:
        return

    def sweep() -> None:
        limit = now() - GatewayProtocol.read_timeout
        for conn in list(connections):
            since = getattr(conn, "reading_since", 0.0)
            if since and since < limit:
                conn.expire()
        _SWEEPERS[id(loop)] = loop.call_later(1.0, sweep)

    _SWEEPERS[id(loop)] = loop.call_later(1.0, sweep)


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, with a refusal counted as a finished handshake.

    A WebSocket refused with an HTTP response (401, 403 or 429 through the ASGI
    denial-response extension) is answered correctly, but uvicorn (0.54) then logs
    "ASGI callable returned without completing handshake." at ERROR for each one, so
    every bad token would read as a server fault to whoever watches the errors.
    """

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True
