"""A real HTTP webhook receiver on a free loopback port, run in a thread.

Each path is one endpoint. Tests script its answers (status, headers, a delay before
answering, an event to wait for) and read what it received; every request is checked
with the ``standardwebhooks`` library against the secrets registered for its path.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks import Webhook

from tests.support.ports import free_port


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    body: bytes = b"ok"
    # answered only once this is set (or the receiver stops): a request held open for as
    # long as the test needs, however long its sender is frozen
    release: threading.Event | None = None


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    verified: bool | None  # None: no secret registered for the path

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


@dataclass
class Endpoint:
    script: deque[Answer] = field(default_factory=deque)
    default: Answer = field(default_factory=Answer)
    secrets: list[str] = field(default_factory=list)
    # a body check: the problems it finds are answered 400, as a real service would
    check: Callable[[bytes], list[str]] | None = None


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoints: dict[str, Endpoint] = defaultdict(Endpoint)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
            access_log=False,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("webhook receiver did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def answer(self, path: str, *answers: Answer, default: Answer | None = None) -> None:
        endpoint = self.endpoints[path]
        endpoint.script.extend(answers)
        if default is not None:
            endpoint.default = default

    def checks(self, path: str, check: Callable[[bytes], list[str]]) -> None:
        self.endpoints[path].check = check

    def trust(self, path: str, secret: str) -> None:
        self.endpoints[path].secrets.append(secret)

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait(self, path: str, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.at(path)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{path}: {len(self.at(path))} of {count} requests after {timeout} s")

    def _verify(self, endpoint: Endpoint, body: bytes, headers: dict[str, str]) -> bool | None:
        if not endpoint.secrets:
            return None
        for secret in endpoint.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except Exception:
                continue
            return True
        return False

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the sender died mid-request: nothing was delivered
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        with self._lock:
            endpoint = self.endpoints[path]
            answer = endpoint.script.popleft() if endpoint.script else endpoint.default
            problems = endpoint.check(body) if endpoint.check else []
            if problems:
                answer = Answer(400, body="; ".join(problems).encode())
            self.received.append(
                Received(
                    path, headers, body, time.monotonic(), self._verify(endpoint, body, headers)
                )
            )
        if answer.delay:
            await asyncio.sleep(answer.delay)
        while answer.release is not None and not answer.release.is_set():
            if self._server.should_exit:
                break
            await asyncio.sleep(0.02)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [(k.encode(), v.encode()) for k, v in answer.headers],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})
