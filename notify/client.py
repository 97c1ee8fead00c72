"""The Python consumer client: notify's HTTP API over httpx (an adapter).

    async with notify.Client("https://notify.example", token) as client:
        await client.publish("orders.eu", "order.created", {"order": 17})
        async for event in client.stream("orders.>", last_event_id=saved):
            saved = event.cursor
            ...

``stream`` resumes across reconnects as ``notify.js`` does: it reconnects with backoff
and jitter, sending the last position it saw (``Last-Event-ID``), so it misses nothing
retained and repeats nothing. API errors are raised as notify's own error types.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import orjson

from notify.errors import (
    Conflict,
    Forbidden,
    InvalidCursor,
    InvalidInput,
    NotFound,
    NotifyError,
    RateLimited,
    StoreUnavailable,
    TooLarge,
    Unauthenticated,
    UnsupportedMediaType,
)
from notify.ssedecode import Decoder

log = logging.getLogger("notify.client")
BY_STATUS: dict[int, type[NotifyError]] = {
    400: InvalidCursor,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    415: UnsupportedMediaType,
    422: InvalidInput,
    429: RateLimited,
    503: StoreUnavailable,
}
RETRYABLE = frozenset({429, 500, 502, 503, 504})


class Unreachable(NotifyError):
    """The gateway could not be reached, or it answered something that is not notify."""

    code = "unreachable"
    title = "Gateway unreachable"


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    channel: str
    type: str
    data: Any
    time: str
    origin: str | None
    cursor: str
    """Where to resume after this event (``last_event_id``): the stream's position after
    it (its SSE ``id:`` line, its WebSocket frame's ``cursor``), which covers every shard
    of a sharded store and may differ from ``id``. With one shard, and for an event of
    :meth:`Client.history`, it is ``id``: resume after a page from ``Page.next``."""


@dataclass(frozen=True, slots=True)
class Page:
    events: list[Event]
    next: str | None


def event_of(raw: Mapping[str, Any], cursor: str | None = None) -> Event:
    return Event(
        id=raw["id"],
        channel=raw["channel"],
        type=raw["type"],
        data=raw.get("data"),
        time=raw.get("time", ""),
        origin=raw.get("origin"),
        cursor=cursor or raw["id"],
    )


def error_of(response: httpx.Response) -> NotifyError:
    """The problem+json answer as notify's own error (``field`` and ``errors`` kept)."""
    try:
        problem = response.json()
        detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
        field = problem.get("field")
    except ValueError:
        detail, field, problem = f"HTTP {response.status_code}", None, {}
    kind = BY_STATUS.get(response.status_code)
    if kind is RateLimited:
        return RateLimited(detail, retry_after=retry_after(response, 1.0))
    error: NotifyError
    if kind is None:
        error = Unreachable(f"HTTP {response.status_code}: {detail}")
    else:
        error = kind(detail, field=field if isinstance(field, str) else None)
    error.errors = [
        InvalidInput(str(e.get("detail", "")), field=e.get("field"))
        for e in problem.get("errors", [])
        if isinstance(e, dict)
    ]
    return error


def retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else default


class Client:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 10.0,
        read_timeout: float = 60.0,
        backoff: tuple[float, float] = (0.1, 5.0),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``read_timeout`` bounds the silence on a stream (the gateway's keepalive
        comes every 15 s by default); ``backoff`` is the first and the longest wait
        between reconnections."""
        self.url = url.rstrip("/")
        self.backoff = backoff
        self._stream_timeout = httpx.Timeout(timeout, read=read_timeout)
        self._auth = f"Bearer {token}"
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": self._auth},
            timeout=timeout,
            transport=transport,
            trust_env=False,
        )

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise error_of(response)
        return response.json() if response.content else None

    # -- publishing ------------------------------------------------------------------

    async def publish(
        self,
        channel: str,
        type: str,
        data: Any,
        *,
        origin: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Publish one event; its id once it is stored."""
        body: dict[str, Any] = {"channel": channel, "type": type, "data": data}
        if origin is not None:
            body["origin"] = origin
        answer = await self._call("POST", "/v1/events", json=body, headers=_idem(idempotency_key))
        return str(answer["id"])

    async def publish_many(
        self, events: Iterable[Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> list[str]:
        """Publish 1-1000 events at once, all or nothing; their ids."""
        body = {"events": [dict(e) for e in events]}
        answer = await self._call(
            "POST", "/v1/events/batch", json=body, headers=_idem(idempotency_key)
        )
        return [str(i) for i in answer["ids"]]

    # -- reading ---------------------------------------------------------------------

    async def history(self, channel: str, *, after: str | None = None, limit: int = 100) -> Page:
        """One page of retained events on ``channel`` (a pattern too), oldest first."""
        params: dict[str, Any] = {"channel": channel, "limit": limit}
        if after is not None:
            params["after"] = after
        answer = await self._call("GET", "/v1/events", params=params)
        return Page([event_of(e) for e in answer["events"]], answer["next"])

    async def stream(
        self,
        *patterns: str,
        last_event_id: str | None = None,
        origin: str | None = None,
        on_gap: Callable[[str], None] | None = None,
        transport: Literal["sse", "ws"] = "sse",
    ) -> AsyncIterator[Event]:
        """Every event on ``patterns`` from ``last_event_id`` (else from now), for as
        long as the caller iterates, across reconnections, over Server-Sent Events or
        (``transport="ws"``, needs the ``websockets`` package) a WebSocket. A cursor
        older than the history kept calls ``on_gap`` with the reason, then goes on
        from the oldest event kept. A refused token or pattern raises; anything else
        is retried with backoff."""
        if not patterns:
            raise ValueError("stream needs at least one channel pattern")
        if transport == "ws" and origin is not None:
            raise ValueError("origin= is for SSE; a socket never gets its own events back")
        once = self._sse_once if transport == "sse" else self._ws_once
        position = _Position(last_event_id)
        delay = self.backoff[0]
        while True:
            try:
                async for event in once(patterns, origin, position, on_gap or _log_gap):
                    delay = self.backoff[0]  # it works again
                    yield event
            except _Retry as retry:
                delay = max(delay, retry.after)
            except (httpx.TransportError, httpx.DecodingError, OSError) as exc:
                log.info("stream interrupted (%s); resuming from %s", exc, position.cursor)
            except Exception as exc:
                if not _closed_socket(exc):
                    raise
                log.info("socket closed (%s); resuming from %s", exc, position.cursor)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # jitter: no herd
            delay = min(delay * 2, self.backoff[1])

    async def _sse_once(
        self,
        patterns: tuple[str, ...],
        origin: str | None,
        position: _Position,
        on_gap: Callable[[str], None],
    ) -> AsyncIterator[Event]:
        params = httpx.QueryParams([("channel", p) for p in patterns])
        if origin is not None:
            params = params.add("origin", origin)
        headers = {"Accept": "text/event-stream"}
        if position.cursor:
            headers["Last-Event-ID"] = position.cursor
        async with self._http.stream(
            "GET", "/v1/stream", params=params, headers=headers, timeout=self._stream_timeout
        ) as response:
            if response.status_code != 200:
                await response.aread()
                if response.status_code in RETRYABLE:
                    raise _Retry(retry_after(response, 0.0))
                raise error_of(response)
            decoder = Decoder(position.cursor or "")
            async for line in response.aiter_lines():
                frame = decoder.feed(line)
                if line == "":
                    # a frame's `id:` counts once the frame is whole (a browser's rule):
                    # a stream cut after the `id:` line of an event never delivered
                    # resumes before that event. The first frame's bare `id:` is a
                    # position: kept too.
                    position.cursor = decoder.last_event_id or position.cursor
                if frame is None:
                    continue
                if frame.event == "message":
                    yield event_of(orjson.loads(frame.data), frame.last_event_id)
                elif frame.event == "gap":
                    on_gap(str(orjson.loads(frame.data).get("reason", "gap")))

    async def _ws_once(
        self,
        patterns: tuple[str, ...],
        origin: str | None,
        position: _Position,
        on_gap: Callable[[str], None],
    ) -> AsyncIterator[Event]:
        import websockets  # optional: only this transport needs it

        url = "ws" + self.url.removeprefix("http") + "/v1/ws"
        try:
            conn = await websockets.connect(
                url, additional_headers={"Authorization": self._auth}, open_timeout=10
            )
        except websockets.exceptions.InvalidStatus as exc:
            status = exc.response.status_code
            if status in RETRYABLE:
                raise _Retry(0.0) from exc
            raise BY_STATUS.get(status, Unreachable)(f"HTTP {status}") from exc
        async with conn:
            subscribe: dict[str, Any] = {"op": "subscribe", "ref": "s", "channels": list(patterns)}
            if position.cursor:
                subscribe["last_event_id"] = position.cursor
            await conn.send(orjson.dumps(subscribe).decode())
            async for message in conn:
                frame = orjson.loads(message)
                op = frame.get("op")
                if op == "event":
                    event = event_of(frame["event"], frame.get("cursor"))
                    position.cursor = event.cursor
                    yield event
                elif op == "ok" and frame.get("position"):
                    position.cursor = str(frame["position"])
                elif op == "gap":
                    on_gap(str(frame.get("reason", "gap")))
                elif op == "error":
                    status = int(frame.get("status", 500))
                    if status in RETRYABLE:
                        raise _Retry(0.0)
                    raise BY_STATUS.get(status, Unreachable)(
                        str(frame.get("detail", "")), field=frame.get("field")
                    )

    # -- subscriptions and deliveries -------------------------------------------------

    async def subscriptions(self, *, user: str | None = None) -> list[dict[str, Any]]:
        params = {"user": user} if user else {}
        answer = await self._call("GET", "/v1/subscriptions", params=params)
        return list(answer["subscriptions"])

    async def subscribe(
        self,
        channel: str,
        sink: Mapping[str, Any],
        *,
        types: Iterable[str] | None = None,
        user: str | None = None,
    ) -> dict[str, Any]:
        """Create a subscription; a webhook's answer carries its signing secret once."""
        body: dict[str, Any] = {"channel": channel, "sink": dict(sink)}
        if types is not None:
            body["types"] = list(types)
        if user is not None:
            body["user"] = user
        answer: dict[str, Any] = await self._call("POST", "/v1/subscriptions", json=body)
        return answer

    async def subscription(self, sub_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call("GET", f"/v1/subscriptions/{sub_id}")
        return answer

    async def update_subscription(self, sub_id: str, **changes: Any) -> dict[str, Any]:
        """Change ``channel``, ``types``, ``sink`` or ``enabled``."""
        answer: dict[str, Any] = await self._call(
            "PATCH", f"/v1/subscriptions/{sub_id}", json=changes
        )
        return answer

    async def unsubscribe(self, sub_id: str) -> None:
        await self._call("DELETE", f"/v1/subscriptions/{sub_id}")

    async def deliveries(
        self, subscription: str, *, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"subscription": subscription, "limit": limit}
        if status is not None:
            params["status"] = status
        answer = await self._call("GET", "/v1/deliveries", params=params)
        return list(answer["deliveries"])

    async def retry_delivery(self, delivery_id: str) -> None:
        await self._call("POST", f"/v1/deliveries/{delivery_id}/retry")

    # -- lifetime --------------------------------------------------------------------

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


class _Position:
    """Where a stream resumes: the last event's cursor, or the position the server
    announced when the stream opened (so nothing is missed before a first event)."""

    __slots__ = ("cursor",)

    def __init__(self, cursor: str | None) -> None:
        self.cursor = cursor


class _Retry(Exception):
    def __init__(self, after: float) -> None:
        super().__init__(after)
        self.after = after


def _closed_socket(exc: Exception) -> bool:
    try:
        from websockets.exceptions import WebSocketException
    except ImportError:
        return False
    return isinstance(exc, WebSocketException)


def _idem(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key is not None else {}


def _log_gap(reason: str) -> None:
    log.warning("events were missed: the cursor is older than the history kept (%s)", reason)
