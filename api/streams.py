"""What SSE and WebSocket connections share: resume without gap or duplicate, and
the SSE response itself (a bare ASGI app: one write per batch of pending events)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from notify.api import metrics
from notify.api.httpproto import ABORT, DIRECT
from notify.api.hub import Subscriber
from notify.api.state import Gateway
from notify.auth import Principal
from notify.errors import StoreUnavailable
from notify.eventlog import Entry, Page
from notify.events import with_id
from notify.sse import continue_frame, event_frame, gap_frame, position_frame

PAGE = 500
log = logging.getLogger("notify.streams")
Emit = Callable[[list[Entry], list[str]], Awaitable[None]]
"""Sends catch-up events, each with the stream's position after it (its SSE ``id:``)."""


def visible(sub: Subscriber, page: Page) -> tuple[list[Entry], list[str]]:
    """The page's entries this connection takes, with their positions (an entry's id
    with one shard, the page's cursors over a sharded log)."""
    positions = page.cursors if page.cursors is not None else [e.id for e in page.entries]
    kept = [
        (e, p)
        for e, p in zip(page.entries, positions, strict=True)
        if (sub.origin is None or e.origin != sub.origin) and (sub.accept is None or sub.accept(e))
    ]
    return [e for e, _ in kept], [p for _, p in kept]


async def resume(
    gw: Gateway,
    sub: Subscriber,
    patterns: Sequence[str],
    cursor: str | None,
    gap_reason: str | None,
    emit: Emit,
) -> None:
    """Send what ``patterns`` missed after ``cursor``, then go live from exactly there.

    Phase 1 replays history up to the head without holding live events. Phase 2 waits
    for the hub to reach that point, attaches (the hub says where live delivery
    begins) and replays the few events in between while live ones are held back.
    """
    if cursor is None:
        gw.hub.attach(sub, patterns)  # a no-op when :func:`start` attached it already
        return
    after = await replay(gw, sub, patterns, None if gap_reason else cursor, emit)
    if after is not None:
        await gw.hub.reached(after)
    sub.hold += 1
    try:
        upto = gw.hub.attach(sub, patterns)
        if after is None or gw.hub.behind(after, upto):
            await replay(gw, sub, patterns, after, emit, until=upto)
    finally:
        sub.release()


class BudgetSpent(Exception):
    """A catch-up read its share of the log (``NOTIFY_RESUME_SCAN_BUDGET`` entries,
    checked after each page) before reaching the head: the client continues from
    ``position`` with a new request, so no one request reads the whole log."""

    def __init__(self, position: str) -> None:
        super().__init__(position)
        self.position = position


async def replay(
    gw: Gateway,
    sub: Subscriber,
    patterns: Sequence[str],
    after: str | None,
    emit: Emit,
    until: str | None = None,
) -> str | None:
    """Send the history of ``patterns`` after ``after`` (up to ``until``); returns the
    position reached, or raises :class:`BudgetSpent`."""
    budget = gw.settings.resume_scan_budget
    while True:
        page = await gw.log.history(patterns, after, PAGE, until=until)
        budget -= page.scanned
        if page.entries:
            await emit(*visible(sub, page))
            after = page.cursors[-1] if page.cursors else page.entries[-1].id
        if page.next is None:
            return after
        after = page.next
        if budget <= 0:
            raise BudgetSpent(after)


async def hub_started(gw: Gateway, timeout: float = 2.0) -> None:
    """A stream without a cursor starts at the hub's position, which means nothing
    until the hub has read the log's head: wait a little for it, else answer 503."""
    if gw.hub.started.is_set():
        return
    try:
        async with asyncio.timeout(timeout):
            await gw.hub.started.wait()
    except TimeoutError as exc:
        raise StoreUnavailable("the event reader is not running yet; try again") from exc


def start(gw: Gateway, sub: Subscriber, patterns: Sequence[str], cursor: str | None) -> str:
    """The position a stream starts from: its cursor, or, without one, the point after
    which the hub delivers live events (the stream is attached here, with its live
    events held back until the caller releases it once the position is out)."""
    if cursor is not None:
        return cursor
    sub.hold += 1
    return gw.hub.attach(sub, patterns)


def expire_at(sub: Subscriber, principal: Principal) -> asyncio.TimerHandle | None:
    """Close the stream when its token expires: the client must come back with a new one."""
    if principal.exp is None:
        return None
    loop = asyncio.get_running_loop()
    delay = max(0.0, principal.exp - time.time())
    return loop.call_later(delay, sub.close, "token_expired")


class EventStream(Response):
    """``text/event-stream`` of live events, resumed from a cursor."""

    media_type = "text/event-stream"

    def __init__(
        self,
        gw: Gateway,
        principal: Principal,
        patterns: Sequence[str],
        cursor: str | None,
        gap_reason: str | None,
        sub: Subscriber,
        on_open: Callable[[Subscriber], Awaitable[None]] | None = None,
        on_close: Callable[[Subscriber], None] | None = None,
    ) -> None:
        self.gw = gw
        self.principal = principal
        self.patterns = list(patterns)
        self.cursor = cursor
        self.gap_reason = gap_reason
        self.sub = sub
        self.on_open = on_open
        self.on_close = on_close
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sub, gw = self.sub, self.gw

        async def write(data: bytes | str) -> None:
            body = data if isinstance(data, bytes) else data.encode()
            await send({"type": "http.response.body", "body": body, "more_body": True})

        async def emit(entries: list[Entry], positions: list[str]) -> None:
            if entries and not sub.closed:
                frames = b"".join(
                    event_frame(p, with_id(e.id, e.body))
                    for e, p in zip(entries, positions, strict=True)
                )
                await sub.send(write, frames)
                metrics.sent(len(entries))

        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        gw.hub.track(sub)
        watcher = asyncio.create_task(_watch_disconnect(receive, sub))
        expiry = expire_at(sub, self.principal)
        metrics.STREAMS_OPEN.labels("sse").inc()
        try:
            position = start(gw, sub, self.patterns, self.cursor)
            try:
                gap = gap_frame(self.gap_reason) if self.gap_reason else b""
                await sub.send(write, position_frame(position) + gap)
            finally:
                if self.cursor is None:
                    sub.release()
            # live events may now be written by the hub itself (see Subscriber.flush)
            sub.direct = scope.get(DIRECT)
            if self.on_open is not None:
                await self.on_open(sub)
            try:
                await resume(gw, sub, self.patterns, self.cursor, self.gap_reason, emit)
            except BudgetSpent as spent:
                await sub.send(write, continue_frame(spent.position))
                sub.close("resume_budget")
            await sub.pump(write)
        except Exception as exc:
            # the stream has begun: all we can say is goodbye; the client resumes by id
            sub.close(f"error: {type(exc).__name__}")
        finally:
            metrics.STREAMS_OPEN.labels("sse").dec()
            gw.hub.detach(sub)
            if sub.lease is not None:
                await gw.limiter.close_stream(*sub.lease)
            if self.on_close is not None:
                self.on_close(sub)
            watcher.cancel()
            if expiry is not None:
                expiry.cancel()
            abort: Callable[[], None] | None = scope.get(ABORT)
            log_cut(sub)
            if sub.reason == "slow_consumer" and abort is not None:
                abort()  # it does not read: waiting to say goodbye would be in vain
            else:
                try:
                    async with asyncio.timeout(1.0):
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                except Exception:
                    if abort is not None:
                        abort()


def log_cut(sub: Subscriber) -> None:
    """A slow consumer is an expected event (counted in metrics), not an error."""
    if sub.reason == "slow_consumer":
        log.info("%s stream cut as a slow consumer; the client resumes from its last id", sub.kind)


async def _watch_disconnect(receive: Receive, sub: Subscriber) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            sub.close("disconnected")
            return
