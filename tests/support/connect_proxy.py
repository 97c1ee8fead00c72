"""A small HTTP CONNECT proxy on loopback, recording every tunnel it is asked for."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class ConnectProxy:
    """Tunnels ``CONNECT host:port`` to that address; answers 407 without ``auth``."""

    def __init__(self, auth: str | None = None) -> None:
        self.auth = auth
        self.tunnels: list[str] = []
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, authority, _ = lines[0].split(" ", 2)
            fields = {
                k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
            }
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                return
            if self.auth is not None and fields.get("proxy-authorization") != self.auth:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                return
            self.tunnels.append(authority)
            host, _, port = authority.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    async def aclose(self) -> None:
        """End every open tunnel (a server's close leaves accepted connections open)."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


@contextlib.contextmanager
def running_proxy(auth: str | None = None) -> Iterator[ConnectProxy]:
    """The proxy on its own event loop thread (for tests whose client is a process)."""
    proxy = ConnectProxy(auth)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    server: list[asyncio.Server] = []

    async def start() -> None:
        server.append(await asyncio.start_server(proxy.handle, "127.0.0.1", 0))
        proxy.port = server[0].sockets[0].getsockname()[1]
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    ready.wait(5)
    try:
        yield proxy
    finally:

        async def stop() -> None:
            server[0].close()
            await proxy.aclose()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
