"""GET /v1/feed: the caller's ``web`` subscriptions as one Server-Sent Events stream.

One watcher per gateway process tails the subscription change stream and refreshes
the open feeds of the users whose subscriptions changed, so a created, changed or
deleted ``web`` subscription takes effect on open feeds at once (well within the
promised second), without reconnecting and without one Redis connection per feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Header, Query
from starlette.requests import HTTPConnection
from starlette.responses import Response

from notify import shards
from notify.api.deps import Auth, GatewayDep
from notify.api.hub import Subscriber
from notify.api.routes.stream import cursor_of, open_stream
from notify.api.state import Gateway
from notify.auth import Principal
from notify.channels import matches
from notify.eventlog import Entry
from notify.events import MAX_ORIGIN
from notify.redis.subscriptions import SubscriptionStore
from notify.subscriptions import Subscription

router = APIRouter(tags=["stream"])
log = logging.getLogger("notify.feed")


class Feed:
    """One open feed: the web subscriptions it follows and its hub subscriber."""

    def __init__(
        self, gw: Gateway, principal: Principal, sub: Subscriber, user: str | None = None
    ) -> None:
        self.gw = gw
        self.principal = principal
        self.user = user or principal.sub  # an admin may follow another user's feed
        self.sub = sub
        self.routes: list[Subscription] = []

    @property
    def patterns(self) -> set[str]:
        return {s.channel for s in self.routes}

    async def load(self) -> None:
        found = await SubscriptionStore(self.gw.redis).web_subscriptions(self.user)
        # a token that lost a right since the subscription was made loses its events too
        self.routes = [s for s in found if self.principal.can_read(s.channel)]

    async def refresh(self) -> None:
        before = self.patterns
        await self.load()
        after = self.patterns
        if self.sub.closed:
            return
        if before - after:
            self.gw.hub.detach(self.sub, before - after)
        if after - before:
            self.gw.hub.attach(self.sub, after - before)

    def accepts(self, entry: Entry) -> bool:
        """Whether one of the web subscriptions wants this event (channel and type)."""
        return any(s.wants(entry.type) and matches(s.channel, entry.channel) for s in self.routes)


class Watcher:
    """Tails the subscription changes for every open feed of this process."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.feeds: dict[str, weakref.WeakSet[Feed]] = defaultdict(weakref.WeakSet)
        self.task: asyncio.Task[None] | None = None

    def add(self, feed: Feed) -> None:
        self.feeds[feed.user].add(feed)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.run(), name="notify-feed-watcher")

    def remove(self, feed: Feed) -> None:
        users = self.feeds.get(feed.user)
        if users is not None:
            users.discard(feed)
            if not users:
                del self.feeds[feed.user]

    async def run(self) -> None:
        store = SubscriptionStore(self.gw.redis)
        cursor: str | None = None
        delay = 0.1
        while self.feeds:
            try:
                if cursor is None:
                    cursor = await store.changes_head()
                changes = await store.changes(cursor, count=500, block_ms=1000)
                delay = 0.1
            except Exception as exc:  # Redis away: feeds keep streaming, changes wait
                log.warning("feed watcher: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if changes:
                cursor = changes[-1].id
            users = {c.user for c in changes if c.user in self.feeds}
            for user in users:
                for feed in list(self.feeds.get(user, ())):
                    with contextlib.suppress(Exception):
                        await feed.refresh()


def watcher(conn: HTTPConnection, gw: Gateway) -> Watcher:
    found: Watcher | None = getattr(conn.app.state, "feed_watcher", None)
    if found is None:
        found = Watcher(gw)
        conn.app.state.feed_watcher = found
    return found


@router.get(
    "/v1/feed",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}, "description": "event stream"}},
)
async def feed(
    conn: HTTPConnection,
    principal: Auth,
    gw: GatewayDep,
    last_event_id: Annotated[str | None, Query(max_length=shards.MAX_CURSOR)] = None,
    origin: Annotated[str | None, Query(max_length=MAX_ORIGIN)] = None,
    user: Annotated[str | None, Query(max_length=64, description="admin only")] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=shards.MAX_CURSOR)
    ] = None,
) -> Response:
    """Live events matching the caller's `web` subscriptions, resumable like `/v1/stream`."""
    cursor = cursor_of(last_event_id_header, last_event_id)
    sub = Subscriber("sse", gw.settings.max_queued, origin=origin)
    current = Feed(gw, principal, sub, principal.acting_for(user))
    await current.load()
    sub.accept = current.accepts
    hub_watcher = watcher(conn, gw)
    patterns = sorted(current.patterns)
    stream = await open_stream(gw, principal, patterns, cursor if patterns else None, sub)

    async def on_open(_: Subscriber) -> None:
        hub_watcher.add(current)
        # a change made between load() and add() would otherwise be missed
        await current.refresh()

    stream.on_open = on_open
    stream.on_close = lambda _: hub_watcher.remove(current)
    return stream
