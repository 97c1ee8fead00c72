"""The WebSocket connection under the hub: event frames written straight to the
transport, control frames left to the library.

An event delivered to a thousand sockets would otherwise pass, per socket, through
Starlette's ``send``, uvicorn's ``send`` and websockets' frame builder, each a
coroutine call or more, and one transport write per event. A server frame is not
masked, so the hub builds each event's frame once (:mod:`notify.wsframe`) and hands a
connection everything a read batch gave it as one ``bytes``: :meth:`write_frames`
writes it now, or says it cannot (the connection's task then waits for room and uses
:meth:`send_frames`). Handshake, pings, pongs, closes and the replies to a client's
own requests stay on uvicorn's and websockets' path. Frames are whole: a direct write
never lands inside one of the library's, because both write complete frames
synchronously on the event loop.

This relies on the internals of uvicorn's websockets-sansio protocol (the flags
named in :data:`USES`); :func:`compatible` checks them once, and without them the
gateway keeps the library's path for everything (slower, same bytes on the wire).
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from notify.api.httpproto import GatewayWebSocketProtocol, reset

WS_CONNECTION = "notify.ws"
"""The scope key under which the route finds its :class:`FastWebSocketProtocol`."""

USES = (
    "handshake_complete",
    "close_sent",
    "disconnected",
    "initial_response",
    "writable",
    "queue",
)
"""The attributes of uvicorn's protocol read here (checked by :func:`compatible`)."""

TESTED = {"uvicorn": ("0.54", "0.55"), "websockets": ("16", "17")}
"""The versions (prefixes) this was written and tested against; the unit tests fail
on an upgrade beyond them, so someone reads this module again."""


class Inbox:
    """What uvicorn uses of ``asyncio.Queue`` (``put_nowait``, ``get``, ``empty``) for
    its one reader, the app, without the queue's three deques: 2.3 KiB per socket."""

    __slots__ = ("_getter", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:
        while not self._items:
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        return self._items.pop(0)


class Flag:
    """What uvicorn uses of ``asyncio.Event`` for ``writable``, with its waiters' list
    made only while someone waits (an Event's deque is 760 bytes per socket)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for fut in waiters or ():
            if not fut.done():
                fut.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        fut = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        await fut
        return True


class FastWebSocketProtocol(GatewayWebSocketProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # lighter stand-ins for what an idle socket keeps (bench c counts it)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if self.handshake_initiated and not self.handshake_complete:
            self.scope[WS_CONNECTION] = self  # type: ignore[literal-required]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.request is not None:
            # the handshake's request and response are not read again (the scope keeps
            # its own copy of the headers); websockets' parser keeps the request alive,
            # so its headers are emptied too
            self.request.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]

    def send_ready(self) -> bool:
        """Whether an event frame may be written now: the handshake is done, no close
        was sent or received, and the transport is not applying back-pressure."""
        return (
            self.handshake_complete
            and self.initial_response is None
            and not self.close_sent
            and not self.disconnected
            and self.writable.is_set()
            and not self.transport.is_closing()
        )

    def write_frames(self, data: bytes) -> bool:
        """Write whole server frames now, or return False (nothing written)."""
        if not self.send_ready():
            return False
        self.transport.write(data)
        return True

    def reset_if_stalled(self) -> bool:
        """Reset the connection if the peer still is not reading (the transport applies
        back-pressure): a close frame could not reach it anyway. True if it was reset."""
        if self.writable.is_set() or self.transport.is_closing():
            return False
        self.disconnected = True
        reset(self.transport)
        return True

    async def send_frames(self, data: bytes) -> None:
        """Write whole server frames once the transport has room. Raises
        ClientDisconnected when the peer is gone; frames after a close are dropped."""
        while not self.writable.is_set():
            await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if self.send_ready():
            self.transport.write(data)


def compatible() -> bool:
    """Whether uvicorn's protocol still has what :class:`FastWebSocketProtocol` reads
    (names its constructor assigns) and overrides (``handle_connect``)."""
    assigned = WebSocketsSansIOProtocol.__init__.__code__.co_names
    return "handle_connect" in vars(WebSocketsSansIOProtocol) and all(
        name in assigned for name in USES
    )


def untested() -> list[str]:
    """Installed versions of uvicorn and websockets outside :data:`TESTED`."""
    return [
        f"{name} {version(name)}"
        for name, prefixes in TESTED.items()
        if not any(version(name).startswith(p + ".") for p in prefixes)
    ]


FAST = compatible()


def connection_of(scope: Any) -> FastWebSocketProtocol | None:
    conn = scope.get(WS_CONNECTION)
    return conn if FAST and isinstance(conn, FastWebSocketProtocol) else None
