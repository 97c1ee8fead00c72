"""Small real clients for the gateway's streams: SSE over httpx, WebSocket over
websockets. They parse the wire format strictly, so tests see what a browser would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data: str = ""
    retry: int | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SSE:
    response: httpx.Response
    lines: AsyncIterator[str]
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    closed: bool = False
    last_id: str | None = None
    """What a browser's last event id would be: set by every ``id:`` line."""

    async def position(self, timeout: float = 5.0) -> str:
        """Read the stream's first frame only: ``retry`` and ``id`` (its position), with
        no ``data`` and no ``event`` (nothing fires in a browser)."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for line in self.lines:
                if line == "":
                    break
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        assert fields.keys() == {"retry", "id"}, fields
        self.retry = int(fields["retry"])
        self.last_id = fields["id"]
        return self.last_id

    async def next(self, timeout: float = 5.0) -> Frame:
        """The next dispatched frame (events and named control frames)."""
        async with asyncio.timeout(timeout):
            frame = Frame()
            has_data = False
            async for line in self.lines:
                if line == "":
                    if has_data or frame.event:
                        return frame
                    frame = Frame()
                    continue
                if line.startswith(":"):
                    self.comments.append(line)
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "id":
                    frame.id = self.last_id = value
                elif name == "event":
                    frame.event = value
                elif name == "data":
                    frame.data = value if not has_data else frame.data + "\n" + value
                    has_data = True
                elif name == "retry":
                    self.retry = int(value)
            self.closed = True
            raise EOFError("stream ended")

    async def events(self, n: int, timeout: float = 10.0) -> list[Frame]:
        out: list[Frame] = []
        async with asyncio.timeout(timeout):
            while len(out) < n:
                out.append(await self.next(timeout))
        return out

    async def until_closed(self, timeout: float = 10.0) -> list[Frame]:
        out: list[Frame] = []
        try:
            while True:
                out.append(await self.next(timeout))
        except EOFError:
            return out


@asynccontextmanager
async def sse(
    base_url: str,
    channels: list[str],
    token: str | None = None,
    *,
    last_event_id: str | None = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[SSE]:
    query: list[tuple[str, str]] = [("channel", c) for c in channels]
    if token:
        query.append(("token", token))
    query += list((params or {}).items())
    hdrs = dict(headers or {})
    if last_event_id:
        hdrs["Last-Event-ID"] = last_event_id
    async with (
        httpx.AsyncClient(
            base_url=base_url, timeout=httpx.Timeout(30.0), trust_env=False
        ) as client,
        client.stream("GET", "/v1/stream", params=query, headers=hdrs) as response,
    ):
        if response.status_code != 200:
            await response.aread()
            raise AssertionError(f"stream answered {response.status_code}: {response.text}")
        yield SSE(response, response.aiter_lines())


def publish(
    base_url: str, token: str, channel: str, type_: str = "t", data: Any = None, **extra: Any
) -> str:
    r = httpx.post(
        f"{base_url}/v1/events",
        json={"channel": channel, "type": type_, "data": data, **extra},
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
    )
    assert r.status_code == 202, r.text
    event_id: str = r.json()["id"]
    return event_id


def publish_batch(base_url: str, token: str, events: list[dict[str, Any]]) -> list[str]:
    r = httpx.post(
        f"{base_url}/v1/events/batch",
        json={"events": events},
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
        timeout=30,
    )
    assert r.status_code == 202, r.text
    ids: list[str] = r.json()["ids"]
    return ids


@asynccontextmanager
async def ws(base_url: str, token: str) -> AsyncIterator[ClientConnection]:
    url = base_url.replace("http://", "ws://") + f"/v1/ws?token={token}"
    # every frame is read off the socket, however many the test leaves unread: with
    # websockets' default max_queue (16) the client stops reading, misses the server's
    # close frame and waits out its close_timeout (10 s) when the block ends
    async with websockets.connect(url, open_timeout=5, max_queue=None) as conn:
        yield conn


async def ws_recv(conn: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        message = await conn.recv()
    value: dict[str, Any] = json.loads(message)
    return value
