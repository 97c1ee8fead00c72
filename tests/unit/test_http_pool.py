"""The webhook sink's HTTP/1.1 pool against scripted loopback servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

from notify.proxy import Proxy
from notify.sinks.answers import MAX_HEAD
from notify.sinks.http import ConnectFailed, HttpPool, ProtocolError, TargetRefused
from tests.support.connect_proxy import ConnectProxy

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


class Server:
    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                self.requests.append(await read_request(reader))
                answer = self.answers.pop(0)
                if answer == b"CLOSE":
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[list[bytes]], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(answers: list[bytes]) -> Server:
        state = Server(answers)
        server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
        state.port = server.sockets[0].getsockname()[1]
        servers.append(server)
        return state

    yield start
    for s in servers:
        s.close()


def pool(**kw: Any) -> HttpPool:
    return HttpPool(allow_private=kw.pop("allow_private", True), max_connections=4, **kw)


OK = b"HTTP/1.1 204 No Content\r\n\r\n"


async def test_keep_alive_reuses_one_connection_and_sends_exact_bytes(serve: Any) -> None:
    server = await serve([OK, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"])
    p = pool()
    url = f"http://127.0.0.1:{server.port}/hook?a=1"
    first = await p.post(url, [("webhook-id", "msg_1")], b'{"x":1}', 1024)
    second = await p.post(url, [("webhook-id", "msg_2")], b"{}", 1024)
    assert (first.status, second.status, second.body) == (204, 200, b"ok")
    assert server.connections == 1
    assert server.requests[0].startswith(b"POST /hook?a=1 HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"\r\nwebhook-id: msg_1\r\n" in server.requests[0]
    assert server.requests[0].endswith(b'\r\ncontent-length: 7\r\n\r\n{"x":1}')
    await p.aclose()


async def test_reads_are_capped_and_an_unread_connection_is_not_reused(serve: Any) -> None:
    huge = b"HTTP/1.1 500 Oops\r\ncontent-length: 100000\r\n\r\n" + b"x" * 100_000
    server = await serve([huge, OK])
    p = pool()
    url = f"http://127.0.0.1:{server.port}/"
    answer = await p.post(url, [], b"1", 100)
    assert (answer.status, answer.body) == (500, b"x" * 100)
    assert (await p.post(url, [], b"2", 100)).status == 204
    assert server.connections == 2
    await p.aclose()


async def test_chunked_answers_interim_answers_and_retry_after(serve: Any) -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\ntransfer-encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nx-trailer: 1\r\n\r\n"
    )
    server = await serve([chunked, OK])
    p = pool()
    url = f"http://127.0.0.1:{server.port}/"
    answer = await p.post(url, [], b"1", 1024)
    assert (answer.status, answer.body, answer.headers["retry-after"]) == (429, b"abcde", "7")
    assert (await p.post(url, [], b"2", 1024)).status == 204
    assert server.connections == 1  # read to its end: reused
    await p.aclose()


async def test_a_keep_alive_connection_closed_by_the_receiver_is_replaced(serve: Any) -> None:
    server = await serve([OK, b"CLOSE", OK])
    p = pool()
    url = f"http://127.0.0.1:{server.port}/"
    assert (await p.post(url, [], b"1", 10)).status == 204
    # the receiver takes the second request and hangs up without an answer, as a
    # server closing an idle connection does: the pool retries once on a new one
    assert (await p.post(url, [], b"2", 10)).status == 204
    assert server.connections == 2
    await p.aclose()


async def test_garbage_and_early_close_are_protocol_errors(serve: Any) -> None:
    server = await serve([b"SMTP ready\r\n\r\n", b"CLOSE"])
    p = pool()
    url = f"http://127.0.0.1:{server.port}/"
    with pytest.raises(ProtocolError):
        await p.post(url, [], b"1", 10)
    with pytest.raises(ProtocolError):
        await p.post(url, [], b"2", 10)  # a fresh connection closed without an answer
    with pytest.raises(ValueError):
        await p.post(url, [("x", "a\r\nb: c")], b"3", 10)
    await p.aclose()


async def test_connects_only_to_the_checked_address(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await serve([OK])
    answers = [["93.184.216.34"], ["127.0.0.1"]]
    lookups: list[str] = []

    async def resolve(host: str, port: int, **kw: Any) -> list[Any]:
        lookups.append(host)
        return [(2, 1, 6, "", (a, port)) for a in answers.pop(0)]

    monkeypatch.setattr(anyio, "getaddrinfo", resolve)
    p = pool(allow_private=False)
    connected: list[str] = []
    real = p._open

    async def record(host: str, port: int, **kw: Any) -> Any:
        connected.append(host)
        return await real("127.0.0.1", server.port, **kw)

    p._open = record  # type: ignore[assignment]
    url = f"http://rebind.test:{server.port}/r"
    assert (await p.post(url, [], b"1", 10)).status == 204
    await p.aclose()  # no keep-alive: the next request resolves again, to loopback
    with pytest.raises(TargetRefused, match="loopback"):
        await p.post(url, [], b"2", 10)
    for literal in ("[::ffff:127.0.0.1]", "169.254.169.254", "[fe80::1]"):
        with pytest.raises(TargetRefused):
            await p.post(f"http://{literal}:{server.port}/", [], b"3", 10)
    assert connected == ["93.184.216.34"]
    assert lookups == ["rebind.test", "rebind.test"]


async def test_idle_connections_are_capped_across_targets(serve: Any) -> None:
    a, b = await serve([OK, OK]), await serve([OK])
    p = HttpPool(allow_private=True, max_connections=1)
    assert (await p.post(f"http://127.0.0.1:{a.port}/", [], b"1", 10)).status == 204
    assert (await p.post(f"http://127.0.0.1:{b.port}/", [], b"2", 10)).status == 204
    # keeping b's connection closed a's: a second request to a needs a new one
    assert (await p.post(f"http://127.0.0.1:{a.port}/", [], b"3", 10)).status == 204
    assert (a.connections, b.connections) == (2, 1)
    await p.aclose()


async def test_an_answer_delimited_by_the_end_of_the_connection(serve: Any) -> None:
    server = await serve([b"HTTP/1.1 200 OK\r\n\r\nuntil the end"])  # then it closes
    p = pool()
    url = f"http://127.0.0.1:{server.port}/"
    answer = await p.post(url, [], b"1", 1024)
    assert (answer.status, answer.body) == (200, b"until the end")
    await p.aclose()


async def test_headers_past_the_cap_are_a_protocol_error(serve: Any) -> None:
    huge = b"HTTP/1.1 200 OK\r\nx-pad: " + b"a" * (MAX_HEAD + 1) + b"\r\n\r\n"
    server = await serve([huge])
    with pytest.raises(ProtocolError, match="headers longer"):
        await pool().post(f"http://127.0.0.1:{server.port}/", [], b"1", 10)


async def test_the_proxy_is_asked_to_connect_to_the_checked_address(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await serve([OK, OK])
    proxy = ConnectProxy(auth="Basic dTpwQHNz")  # u:p@ss
    proxy_server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    proxy_port = proxy_server.sockets[0].getsockname()[1]

    async def resolve(host: str, port: int, **kw: Any) -> list[Any]:
        return [(2, 1, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(anyio, "getaddrinfo", resolve)
    via = Proxy.parse(f"http://u:p%40ss@127.0.0.1:{proxy_port}")
    p = HttpPool(allow_private=True, max_connections=2, proxy=via)
    url = f"http://hooks.test:{server.port}/hook"
    assert (await p.post(url, [], b"1", 10)).status == 204
    assert (await p.post(url, [], b"2", 10)).status == 204  # kept alive through the tunnel
    assert proxy.tunnels == [f"127.0.0.1:{server.port}"]  # an address, never the name
    assert server.requests[0].startswith(b"POST /hook HTTP/1.1\r\nhost: hooks.test:")
    await p.aclose()
    # the guard still applies to the final target, the proxy is never asked
    guarded = HttpPool(allow_private=False, max_connections=2, proxy=via)
    with pytest.raises(TargetRefused, match="loopback"):
        await guarded.post(url, [], b"3", 10)
    assert len(proxy.tunnels) == 1
    # a proxy that refuses the tunnel is a connection failure, with its status
    wrong = HttpPool(
        allow_private=True, max_connections=2, proxy=Proxy.parse(f"http://127.0.0.1:{proxy_port}")
    )
    with pytest.raises(ConnectFailed, match="407"):
        await wrong.post(url, [], b"4", 10)
    proxy_server.close()
    await proxy.aclose()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://proxy:3128", "http://"),
        ("http://proxy:3128/path", "only the proxy"),
        ("http://proxy:99999", "port"),
        ("socks5://proxy:1080", "http://"),
    ],
)
def test_bad_proxy_urls_are_refused(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Proxy.parse(url)
    assert Proxy.parse("http://proxy:3128") == Proxy("proxy", 3128, None)
    assert Proxy.parse("http://a:b@proxy").authorization == "Basic YTpi"
