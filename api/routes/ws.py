"""GET /v1/ws: the WebSocket transport."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from notify import cloudevents, tracing, wsframe, wsproto
from notify.api import metrics
from notify.api.deps import authenticate, gateway_of
from notify.api.hub import Sender, Subscriber
from notify.api.problems import from_error
from notify.api.routes.publish import store, store_cloudevents
from notify.api.state import Gateway
from notify.api.streams import BudgetSpent, expire_at, hub_started, log_cut, resume, start
from notify.api.wsconn import connection_of
from notify.auth import Principal
from notify.errors import Forbidden, InvalidInput, NotifyError
from notify.eventlog import Entry
from notify.events import draft, valid_traceparent, with_id
from notify.origins import origin_allowed

router = APIRouter()
MAX_BAD_FRAMES = 10
CLOSE_CODES = {
    "slow_consumer": 1013,
    "token_expired": 1008,
    "shutdown": 1012,
    "too_many_errors": 1008,
}


@router.websocket("/v1/ws")
async def websocket(ws: WebSocket) -> None:
    gw = gateway_of(ws)
    try:
        origin = ws.headers.get("origin")
        secure = ws.url.scheme in ("wss", "https")
        if not origin_allowed(
            origin,
            gw.settings.cors_origin_list,
            ws.headers.get("host"),
            secure,
            gw.settings.public_url,
            gw.settings.cors_allow_loopback,
        ):
            raise Forbidden("origin is not allowed: the gateway's own, or NOTIFY_CORS_ORIGINS")
        principal = await authenticate(ws)
        sub = Subscriber("ws", gw.settings.max_queued, origin="ws-" + secrets.token_hex(8))
        sub.lease = (principal.sub, sub.origin or "")
        await gw.limiter.open_stream(*sub.lease)
    except NotifyError as exc:
        await deny(ws, exc)
        return
    await ws.accept()
    session = Session(gw, ws, principal, sub)
    try:
        await session.run()
    finally:
        await gw.limiter.close_stream(*sub.lease)


async def deny(ws: WebSocket, exc: NotifyError) -> None:
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(from_error(exc))
    else:
        await ws.close(code=1008, reason=exc.detail[:120])


class Session:
    def __init__(self, gw: Gateway, ws: WebSocket, principal: Principal, sub: Subscriber):
        self.gw, self.ws, self.principal, self.sub = gw, ws, principal, sub
        self.send_frames: Sender = self.write_frames
        self.reading = False
        self.task: asyncio.Task[Any] | None = None
        self.writer: asyncio.Task[None] | None = None

    async def write(self, data: bytes | str) -> None:
        await self.ws.send_text(data if isinstance(data, str) else data.decode())

    async def reply(self, text: str) -> None:
        await self.sub.send(self.write, text)

    async def write_frames(self, data: bytes) -> None:
        """Event frames through the library, one message each: the slow path, for a
        server whose protocol cannot take bytes (see notify.api.wsconn)."""
        for payload in wsframe.payloads(data):
            await self.ws.send_text(payload.decode())

    async def run(self) -> None:
        sub = self.sub
        metrics.STREAMS_OPEN.labels("ws").inc()
        expiry = expire_at(sub, self.principal)
        self.gw.hub.track(sub)
        conn = connection_of(self.ws.scope)
        if conn is not None:
            # event frames go straight to the transport (notify.api.wsconn)
            sub.direct, self.send_frames = conn.write_frames, conn.send_frames
        # This task reads. An idle socket has no other: a writer task is started only
        # when the hub could not write directly (see wake), and a close for any reason
        # (slow consumer, expiry, shutdown) stops the reading.
        self.task = asyncio.current_task()
        sub.wake_hook = self.wake
        try:
            self.reading = True
            await self.read()
        except asyncio.CancelledError:
            if not (sub.closed and self.task is not None and self.task.uncancel() == 0):
                raise
        finally:
            self.reading = False
            sub.wake_hook = None
            metrics.STREAMS_OPEN.labels("ws").dec()
            self.gw.hub.detach(sub)
            if expiry is not None:
                expiry.cancel()
            if self.writer is not None:
                self.writer.cancel()
                with contextlib.suppress(BaseException):
                    await self.writer
            log_cut(sub)
            if sub.reason != "disconnected":
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await self.ws.close(
                            code=CLOSE_CODES.get(sub.reason, 1011), reason=sub.reason[:120]
                        )
                if conn is not None:
                    # a peer that still reads nothing would never see the close; its
                    # kernel buffers go with a reset, and it resumes from its last id
                    conn.reset_if_stalled()

    def wake(self) -> None:
        """The hub has frames it could not write now, or the socket was closed."""
        if self.sub.closed:
            task = self.task
            if self.reading and task is not None and task is not asyncio.current_task():
                task.cancel()
        elif self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self.sub.drain(self.send_frames))

    async def read(self) -> None:
        bad = 0
        while not self.sub.closed:
            try:
                message = await self.ws.receive()
            except WebSocketDisconnect:
                break
            if message["type"] == "websocket.disconnect":
                break
            try:
                text = message.get("text")
                if text is None:
                    raise wsproto.WithRef(
                        None, InvalidInput("frames must be JSON text", field="frame")
                    )
                await self.handle(wsproto.parse(text))
                bad = 0
            except (wsproto.WithRef, NotifyError) as exc:
                ref, err = (exc.ref, exc.error) if isinstance(exc, wsproto.WithRef) else (None, exc)
                if not isinstance(err, NotifyError) or err.status in (400, 413, 422):
                    bad += 1
                await self.fail(ref, err)
            if bad >= MAX_BAD_FRAMES:
                self.sub.close("too_many_errors")
        self.sub.close("disconnected")

    async def fail(self, ref: str | int | None, exc: Exception) -> None:
        if isinstance(exc, NotifyError):
            await self.reply(wsproto.error(ref, exc.status, exc.detail, exc.field))
        else:
            await self.reply(wsproto.error(ref, 422, str(exc)))

    async def handle(self, frame: wsproto.Frame) -> None:
        try:
            if frame.op == "ping":
                await self.reply(wsproto.pong(frame.ref))
            elif frame.op == "subscribe":
                await self.subscribe(frame)
            elif frame.op == "unsubscribe":
                patterns = wsproto.channels(frame)
                self.gw.hub.detach(self.sub, patterns)
                await self.reply(wsproto.ok(frame.ref))
            elif frame.op == "publish":
                await self.publish(frame)
        except NotifyError as exc:
            raise wsproto.WithRef(frame.ref, exc) from exc

    async def subscribe(self, frame: wsproto.Frame) -> None:
        patterns = wsproto.channels(frame)
        for p in patterns:
            self.principal.require_read(p)
        cursor = wsproto.cursor(frame)
        # a cursor restarts a followed channel from that id (what the client asked for:
        # everything after it, in order), rather than being ignored for it
        again = [p for p in patterns if p in self.sub.patterns] if cursor else []
        fresh = [p for p in patterns if p not in self.sub.patterns] + again
        if cursor:
            cursor = await self.gw.log.normalize(cursor)
        gap = await self.gw.log.position(fresh, cursor) if cursor and fresh else None
        if again:  # only once the cursor is known to be usable
            self.gw.hub.detach(self.sub, again)
        if cursor is None:
            await hub_started(self.gw)
        # the position answers first, before any live event of the new patterns
        position = start(self.gw, self.sub, fresh, cursor)
        try:
            await self.reply(wsproto.ok(frame.ref, position=position))
        finally:
            if cursor is None:
                self.sub.release()
        if gap:
            await self.reply(wsproto.gap(gap))
        if fresh:
            try:
                await resume(self.gw, self.sub, fresh, cursor, gap, self.emit)
            except BudgetSpent as spent:
                detail = "catch-up budget spent: subscribe again from position"
                await self.reply(wsproto.error(frame.ref, 503, detail, position=spent.position))

    async def emit(self, entries: list[Entry], positions: list[str]) -> None:
        if entries and not self.sub.closed:
            sharded = self.gw.hub.sharded
            frames = b"".join(
                wsframe.event_frame(with_id(e.id, e.body), p if sharded else None)
                for e, p in zip(entries, positions, strict=True)
            )
            await self.sub.send(self.send_frames, frames)
            metrics.sent(len(entries))

    async def publish(self, frame: wsproto.Frame) -> None:
        body = frame.body
        if "cloudevent" in body:
            await self.publish_cloudevent(frame)
            return
        # the frame's event fields, checked by the one event validator (HTTP's, the
        # Publisher's); this socket's origin, for echo suppression
        raw: dict[str, Any] = {k: body[k] for k in ("channel", "type", "data") if k in body}
        if self.sub.origin is not None:
            raw["origin"] = self.sub.origin
        # a malformed traceparent is ignored, as over HTTP (W3C Trace Context)
        with tracing.publishing(valid_traceparent(body.get("traceparent"))) as traceparent:
            event = draft(
                raw,
                max_bytes=self.gw.settings.max_event_bytes,
                parsed=True,
                traceparent=traceparent,
            )
            self.principal.require_publish(event.channel)
            pairs = await store(self.gw, self.principal.sub, [event], None)
        await self.reply(wsproto.ok(frame.ref, id=pairs[0][0]))

    async def publish_cloudevent(self, frame: wsproto.Frame) -> None:
        """``{"op":"publish","cloudevent":{…}}``: one CloudEvent in structured form, as
        the HTTP endpoints take it (channel from its ``channel`` attribute, ``source`` +
        ``id`` deduplicating), with this socket's origin for echo suppression."""
        body = frame.body
        mixed = sorted(k for k in ("channel", "type", "data") if k in body)
        if mixed:
            raise InvalidInput(
                f"a cloudevent carries its own channel, type and data; drop {', '.join(mixed)}",
                field="cloudevent",
            )
        incoming = cloudevents.from_structured(body["cloudevent"], None, prefix="cloudevent.")
        pairs = await store_cloudevents(
            self.gw,
            self.principal,
            [incoming],
            None,
            origin=self.sub.origin,
            traceparent=body.get("traceparent"),
        )
        await self.reply(wsproto.ok(frame.ref, id=pairs[0][0]))
