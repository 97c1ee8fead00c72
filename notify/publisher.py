"""The Python producer API: write events straight into Redis, validated as over HTTP.

    from notify import Publisher
    Publisher("redis://localhost:6379/0").publish("orders.eu", "order.created", {"id": 17})

``publish`` is synchronous; ``apublish`` (or ``AsyncPublisher.publish``) awaits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from notify.channels import validate_channel
from notify.events import Draft, draft, encode_draft, validate_type
from notify.redis.client import async_client, sync_client
from notify.redis.eventlog import (
    APPEND_LUA,
    RedisEventLog,
    Retention,
    append_keys,
    decode_append,
    translated,
)


class _Config:
    """Validation limits and retention, matching the gateway's defaults (pass the same
    values as its NOTIFY_* settings when those differ)."""

    def __init__(
        self,
        redis_url: str = "redis://localhost:6379/0",
        *,
        max_event_bytes: int = 65536,
        history_seconds: int = 86400,
        history_max_events: int = 1_000_000,
        channel_history_max_events: int = 100_000,
    ) -> None:
        self.redis_url = redis_url
        self.max_event_bytes = max_event_bytes
        self.retention = Retention(history_seconds, history_max_events, channel_history_max_events)
        self._open()

    def _open(self) -> None:
        raise NotImplementedError

    def same_as(self) -> dict[str, int]:
        """These limits, as keyword arguments for another publisher."""
        return {
            "max_event_bytes": self.max_event_bytes,
            "history_seconds": self.retention.seconds,
            "history_max_events": self.retention.max_events,
            "channel_history_max_events": self.retention.channel_max_events,
        }

    def draft(self, channel: str, type_: str, data: Any, origin: str | None) -> Draft:
        return encode_draft(
            validate_channel(channel),
            validate_type(type_),
            data,
            origin,
            max_bytes=self.max_event_bytes,
        )

    def drafts(self, events: Iterable[Mapping[str, Any]]) -> list[Draft]:
        out = [
            draft(dict(e), max_bytes=self.max_event_bytes, index=i) for i, e in enumerate(events)
        ]
        if not out:
            raise ValueError("no events")
        return out


class AsyncPublisher(_Config):
    def _open(self) -> None:
        self._client = async_client(self.redis_url)
        self._log = RedisEventLog(self._client, self.retention)

    async def publish(
        self, channel: str, type: str, data: Any, *, origin: str | None = None
    ) -> str:
        """Store one event; returns its id."""
        pairs = await self._log.append([self.draft(channel, type, data, origin)])
        return pairs[0][0]

    async def publish_many(self, events: Iterable[Mapping[str, Any]]) -> list[str]:
        """Store events (objects with channel, type, data, origin?) atomically."""
        pairs = await self._log.append(self.drafts(events))
        return [i for i, _ in pairs]

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncPublisher:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


class Publisher(_Config):
    def _open(self) -> None:
        self._client = sync_client(self.redis_url)
        self._script = self._client.register_script(APPEND_LUA)
        self._async: AsyncPublisher | None = None

    def _append(self, drafts: list[Draft]) -> list[tuple[str, str]]:
        with translated():
            raw = self._script(
                keys=append_keys(drafts, None), args=self.retention.append_args(drafts)
            )
        return decode_append(raw, drafts)

    def publish(self, channel: str, type: str, data: Any, *, origin: str | None = None) -> str:
        """Store one event; returns its id."""
        return self._append([self.draft(channel, type, data, origin)])[0][0]

    def publish_many(self, events: Iterable[Mapping[str, Any]]) -> list[str]:
        return [i for i, _ in self._append(self.drafts(events))]

    async def apublish(
        self, channel: str, type: str, data: Any, *, origin: str | None = None
    ) -> str:
        """The awaitable form of ``publish`` (its own asyncio connection)."""
        if self._async is None:
            self._async = AsyncPublisher(self.redis_url, **self.same_as())
        return await self._async.publish(channel, type, data, origin=origin)

    def close(self) -> None:
        """Close the synchronous connection; after ``apublish``, use ``aclose``."""
        self._client.close()

    async def aclose(self) -> None:
        self._client.close()
        if self._async is not None:
            await self._async.aclose()
            self._async = None

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
