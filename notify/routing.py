"""Routing events to subscriptions (pure).

The router keeps every enabled subscription in a PatternIndex keyed by channel
pattern, so routing one event costs time in the number of matching subscriptions,
not in the number of subscriptions.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from notify.channels import PatternIndex, matches
from notify.subscriptions import Subscription


@dataclass(frozen=True, slots=True)
class Delivery:
    """One (subscription, event) pair to deliver."""

    id: str
    subscription: str
    user: str
    kind: str
    event_id: str


def delivery_id(subscription_id: str, event_id: str) -> str:
    """Stable for a (subscription, event) pair, so a re-routed event finds its record."""
    digest = hashlib.sha256(f"{subscription_id}/{event_id}".encode()).digest()[:20]
    return "msg_" + base64.b32encode(digest).decode().lower().rstrip("=")


def event_ms(event_id: str) -> int:
    return int(event_id.partition("-")[0])


class Router:
    def __init__(self, subscriptions: Iterable[Subscription] = ()) -> None:
        self._index: PatternIndex[str] = PatternIndex()
        self._subs: dict[str, Subscription] = {}
        for sub in subscriptions:
            self.put(sub)

    def __len__(self) -> int:
        return len(self._subs)

    def __contains__(self, subscription_id: str) -> bool:
        return subscription_id in self._subs

    def put(self, sub: Subscription) -> None:
        """Add or replace a subscription; a disabled one is removed."""
        self.remove(sub.id)
        if not sub.enabled:
            return
        self._subs[sub.id] = sub
        self._index.add(sub.channel, sub.id)

    def remove(self, subscription_id: str) -> None:
        old = self._subs.pop(subscription_id, None)
        if old is not None:
            self._index.remove(old.channel, subscription_id)

    def route(self, event_id: str, channel: str, event_type: str) -> list[Delivery]:
        """The deliveries an event makes, one per matching subscription."""
        at = event_ms(event_id)
        out: list[Delivery] = []
        for sub_id in set(self._index.match(channel)):
            sub = self._subs[sub_id]
            if at >= sub.since_ms and sub.wants(event_type):
                out.append(
                    Delivery(delivery_id(sub.id, event_id), sub.id, sub.user, sub.kind, event_id)
                )
        out.sort(key=lambda d: d.subscription)
        return out


def replayed(sub: Subscription, event_id: str, channel: str, event_type: str) -> Delivery | None:
    """The delivery a replay makes for one retained event (creation time is ignored)."""
    if not matches(sub.channel, channel) or not sub.wants(event_type):
        return None
    return Delivery(delivery_id(sub.id, event_id), sub.id, sub.user, sub.kind, event_id)
