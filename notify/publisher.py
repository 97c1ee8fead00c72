"""The Python producer API: write events straight into Redis, validated as over HTTP.

    from notify import Publisher
    Publisher().publish("orders.eu", "order.created", {"id": 17})

The Redis URL defaults to ``NOTIFY_REDIS_URL`` (else ``redis://localhost:6379/0``).
Retention and the event size limit are those the gateways advertise in Redis
(``keys.LIMITS``, re-read every minute), so a producer left on defaults never trims
history shorter than the gateways keep it; arguments given here override them.
``publish`` is synchronous; ``apublish`` (or ``AsyncPublisher.publish``) awaits.
``traceparent=`` (W3C Trace Context) is stored with the event, as the gateways store the
header: dispatch and delivery join that trace, and webhooks carry it on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from notify import cloudevents, keys
from notify.eventlog import EventLog
from notify.events import EventDraft, draft, valid_traceparent
from notify.redis import limits as advertised
from notify.redis.client import async_client, sync_client
from notify.redis.eventlog import (
    APPEND_LUA,
    Retention,
    append_keys,
    decode_append,
    open_log,
    recorded_shards,
    recorded_shards_async,
    translated,
)
from notify.shards import merge, split

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULTS = {
    "max_event_bytes": 65536,
    "history_seconds": 86400,
    "history_max_events": 1_000_000,
    "channel_history_max_events": 100_000,
}
REFRESH_SECONDS = 60.0
PRODUCER = "~producer"
"""Whose idempotency keys a producer's are: no token subject can be this (``~`` is not a
channel-segment character), so they never meet an HTTP client's keys."""


class _Config:
    def __init__(
        self,
        redis_url: str | None = None,
        *,
        max_event_bytes: int | None = None,
        history_seconds: int | None = None,
        history_max_events: int | None = None,
        channel_history_max_events: int | None = None,
    ) -> None:
        self.redis_url = redis_url or os.environ.get("NOTIFY_REDIS_URL") or DEFAULT_URL
        given = {
            "max_event_bytes": max_event_bytes,
            "history_seconds": history_seconds,
            "history_max_events": history_max_events,
            "channel_history_max_events": channel_history_max_events,
        }
        self._given = {k: v for k, v in given.items() if v is not None}
        self._limits = {**DEFAULTS, **self._given}
        self._read_at = float("-inf")
        self._open()

    def _open(self) -> None:
        raise NotImplementedError

    def _stale(self) -> bool:
        return time.monotonic() - self._read_at >= REFRESH_SECONDS

    def _adopt(self, found: Mapping[str, int]) -> None:
        """The gateways' limits, then the ones given here on top."""
        self._limits = {**DEFAULTS, **found, **self._given}
        self._read_at = time.monotonic()

    @property
    def max_event_bytes(self) -> int:
        return self._limits["max_event_bytes"]

    @property
    def retention(self) -> Retention:
        return Retention(
            self._limits["history_seconds"],
            self._limits["history_max_events"],
            self._limits["channel_history_max_events"],
        )

    def same_as(self) -> dict[str, int]:
        """The limits given to this publisher, as keyword arguments for another."""
        return dict(self._given)

    def draft(
        self,
        channel: str,
        type_: str,
        data: Any,
        origin: str | None,
        traceparent: str | None = None,
    ) -> EventDraft:
        raw = {"channel": channel, "type": type_, "data": data}
        if origin is not None:
            raw["origin"] = origin
        # the gateways' own validator: one set of rules and errors for every way in
        return draft(raw, max_bytes=self.max_event_bytes, traceparent=_traceparent(traceparent))

    def drafts(self, events: Iterable[Mapping[str, Any]]) -> list[EventDraft]:
        out = [
            draft(dict(e), max_bytes=self.max_event_bytes, index=i) for i, e in enumerate(events)
        ]
        if not out:
            raise ValueError("no events")
        return out


def cloudevent_draft(
    config: _Config, event: Mapping[str, Any], channel: str | None
) -> tuple[EventDraft, str]:
    """One structured-mode CloudEvent as the gateways take it: its draft, and the
    idempotency key its ``source`` + ``id`` make."""
    incoming = cloudevents.from_structured(dict(event), channel)
    [one], key = cloudevents.prepare([incoming], max_bytes=config.max_event_bytes)
    return one, key


def _traceparent(value: str | None) -> str | None:
    """A given traceparent, checked: unlike a header received from elsewhere (ignored
    when malformed, as W3C Trace Context asks of a receiver), a bad argument is the
    caller's bug, said at once."""
    if value is None:
        return None
    checked = valid_traceparent(value)
    if checked is None:
        raise ValueError(f"traceparent {value[:64]!r} is not a W3C traceparent")
    return checked


def _idempotency(key: str | None) -> str | None:
    if key is None:
        return None
    if not key or len(key) > 255 or not key.isprintable():
        raise ValueError("idempotency_key must be 1-255 printable characters")
    return keys.idempotency(PRODUCER, key)


class AsyncPublisher(_Config):
    def _open(self) -> None:
        self._client = async_client(self.redis_url)
        self._event_log: EventLog | None = None

    async def _log(self) -> EventLog:
        if self._stale() or self._event_log is None:
            with translated():
                self._adopt(await advertised.read(self._client))
                count = await recorded_shards_async(self._client)
            self._event_log = open_log(self._client, self.retention, count)
        return self._event_log

    async def publish(
        self,
        channel: str,
        type: str,
        data: Any,
        *,
        origin: str | None = None,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
    ) -> str:
        """Store one event; returns its id (the first one's again for a repeated
        ``idempotency_key`` within 24 h, storing nothing new). ``traceparent``: a W3C
        Trace Context traceparent to store with it (ValueError if malformed)."""
        log = await self._log()
        pairs = await log.append(
            [self.draft(channel, type, data, origin, traceparent)],
            idempotency_key=_idempotency(idempotency_key),
        )
        return pairs[0][0]

    async def publish_cloudevent(
        self, event: Mapping[str, Any], *, channel: str | None = None
    ) -> str:
        """Store one CloudEvent 1.0 given in structured form (a mapping with
        specversion, id, source, type, data or data_base64, and a ``channel`` attribute
        unless ``channel`` is given); a repeat of its ``source`` + ``id`` within 24 h
        returns the first id and stores nothing."""
        log = await self._log()
        one, key = cloudevent_draft(self, event, channel)
        pairs = await log.append([one], idempotency_key=_idempotency(key))
        return pairs[0][0]

    async def publish_many(
        self, events: Iterable[Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> list[str]:
        """Store events (objects with channel, type, data, origin?) atomically."""
        log = await self._log()
        pairs = await log.append(self.drafts(events), idempotency_key=_idempotency(idempotency_key))
        return [i for i, _ in pairs]

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncPublisher:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


class Publisher(_Config):
    def _open(self) -> None:
        with translated():  # a cluster client reads the slot map as it is made
            self._client = sync_client(self.redis_url)
        self._script = self._client.register_script(APPEND_LUA)
        self._async: AsyncPublisher | None = None
        self._shards = 1

    def _append(self, drafts: list[EventDraft], key: str | None) -> list[tuple[str, str]]:
        """Per shard, one append script call (atomic on each shard, see
        notify.shards), answered in the order of ``drafts``."""
        idem = _idempotency(key)
        with translated():
            if self._stale():
                self._adopt(advertised.parse(self._client.hgetall(keys.LIMITS)))
                self._shards = recorded_shards(self._client)
            count = self._shards
            groups = split([d.channel for d in drafts], count)
            parts: dict[int, list[tuple[str, str]]] = {}
            for s, indexes in groups.items():
                part = [drafts[i] for i in indexes]
                shard = keys.shard(s, count)
                raw = self._script(
                    keys=append_keys(idem, shard), args=self.retention.append_args(part, shard)
                )
                parts[s] = decode_append(raw, part)
        return merge(parts, groups, len(drafts))

    def publish(
        self,
        channel: str,
        type: str,
        data: Any,
        *,
        origin: str | None = None,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
    ) -> str:
        """Store one event; returns its id (the first one's again for a repeated
        ``idempotency_key`` within 24 h, storing nothing new). ``traceparent``: a W3C
        Trace Context traceparent to store with it (ValueError if malformed)."""
        drafted = self.draft(channel, type, data, origin, traceparent)
        return self._append([drafted], idempotency_key)[0][0]

    def publish_many(
        self, events: Iterable[Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> list[str]:
        return [i for i, _ in self._append(self.drafts(events), idempotency_key)]

    def publish_cloudevent(self, event: Mapping[str, Any], *, channel: str | None = None) -> str:
        """Store one CloudEvent 1.0 given in structured form (see
        ``AsyncPublisher.publish_cloudevent``); returns its id."""
        one, key = cloudevent_draft(self, event, channel)
        return self._append([one], key)[0][0]

    async def apublish(
        self,
        channel: str,
        type: str,
        data: Any,
        *,
        origin: str | None = None,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
    ) -> str:
        """The awaitable form of ``publish`` (its own asyncio connection)."""
        if self._async is None:
            self._async = AsyncPublisher(self.redis_url, **self.same_as())
        return await self._async.publish(
            channel,
            type,
            data,
            origin=origin,
            idempotency_key=idempotency_key,
            traceparent=traceparent,
        )

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
