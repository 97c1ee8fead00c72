"""Reading one HTTP/1.1 answer off a connection, with httptools (llhttp) as the parser.

The sinks send one request at a time on a connection, so an answer is read until the
parser says it is complete, skipping interim (1xx) answers. At most ``max_read`` bytes
of a body are kept; an answer not read to its end leaves a connection that must not be
reused, and the caller learns that from ``Answer``'s companion flag.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httptools

MAX_HEAD = 64 * 1024
"""Bytes of status line and header fields an answer may have."""

_READ = 64 * 1024


class HttpClientError(Exception):
    """Base of the sinks' HTTP client errors.

    HttpClientError
     ├── TargetRefused   the SSRF guard refused the target: permanent for the delivery
     ├── ConnectFailed   no connection could be made (DNS, refused, proxy): transient
     └── ProtocolError   the answer is not HTTP/1.1 this client can read: transient
    """


class TargetRefused(HttpClientError):
    """The target resolves to an address the sinks may not reach."""


class ConnectFailed(HttpClientError):
    """No connection to the target could be made."""


class ProtocolError(HttpClientError):
    """The receiver's answer is not HTTP/1.1 this client can read."""


class Stale(Exception):
    """A reused connection ended before any byte of an answer (the receiver closed it)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; the first of repeated fields
    body: bytes  # at most the cap the request asked for


class _Reading:
    """httptools' callbacks: gathers one final answer, skipping 1xx ones."""

    __slots__ = (
        "body",
        "complete",
        "has_head",
        "head_size",
        "headers",
        "keep_alive",
        "max_read",
        "overflow",
        "parser",
    )

    def __init__(self, max_read: int) -> None:
        self.max_read = max_read
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.has_head = False
        self.complete = False
        self.overflow = False
        self.keep_alive = False
        self.head_size = 0
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        self.headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1").strip())

    def on_headers_complete(self) -> None:
        if self.parser.get_status_code() >= 200:
            self.has_head = True

    def on_body(self, chunk: bytes) -> None:
        room = self.max_read - len(self.body)
        if len(chunk) > room:
            self.overflow = True
            chunk = chunk[:room]
        self.body += chunk

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() >= 200:
            self.complete = True
            # read now: once the message is complete the parser forgets it
            self.keep_alive = self.parser.should_keep_alive()
        else:  # an interim answer: the final one follows on the same connection
            self.headers = {}


async def read_answer(reader: asyncio.StreamReader, max_read: int) -> tuple[Answer, bool]:
    """One final answer, and whether the connection may carry another request."""
    state = _Reading(max_read)
    parser = state.parser
    head_bytes = 0
    first = True
    while not state.complete and not state.overflow:
        chunk = await reader.read(_READ)
        if not chunk:
            if first:
                raise Stale
            if state.has_head and _until_close(state.headers):
                # a body delimited by the end of the connection has ended
                return _answer(parser, state), False
            raise ProtocolError("the connection closed in the middle of the answer")
        first = False
        if not state.has_head:
            head_bytes += len(chunk)
        try:
            parser.feed_data(chunk)
        except httptools.HttpParserError as exc:
            if state.complete:
                break  # bytes after a whole answer: the answer stands, the connection goes
            raise ProtocolError(f"not an HTTP/1.1 answer: {exc}"[:120]) from exc
        if state.head_size > MAX_HEAD or (not state.has_head and head_bytes > MAX_HEAD):
            raise ProtocolError(f"answer headers longer than {MAX_HEAD} bytes")
    reusable = state.complete and not state.overflow and state.keep_alive
    return _answer(parser, state), reusable


def _answer(parser: httptools.HttpResponseParser, state: _Reading) -> Answer:
    return Answer(parser.get_status_code(), state.headers, bytes(state.body))


def _until_close(headers: dict[str, str]) -> bool:
    return "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "")


async def read_head(reader: asyncio.StreamReader) -> int:
    """The status of an answer that has no body (a proxy's answer to CONNECT)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError("the connection closed in the middle of the answer") from exc
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError(f"answer headers longer than {MAX_HEAD} bytes") from exc
    state = _Reading(0)
    try:
        state.parser.feed_data(head)
    except httptools.HttpParserError as exc:
        raise ProtocolError(f"not an HTTP/1.1 answer: {exc}"[:120]) from exc
    if not state.has_head:
        raise ProtocolError("no final answer")
    return int(state.parser.get_status_code())
