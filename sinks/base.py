"""The Sink protocol: one delivery attempt of one event to one subscription's target.

A sink returns a Receipt when the target took the event and raises a DeliveryError
otherwise: TransientDeliveryError (retry, optionally after ``retry_after``),
PermanentDeliveryError (give up), TargetGone (give up and disable the subscription).
Retry policy, leases and bookkeeping belong to the worker, not to sinks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from notify.subscriptions import Subscription

RESPONSE_EXCERPT = 256
"""Characters of a receiver's answer kept in the attempt log."""


@dataclass(frozen=True, slots=True)
class Job:
    delivery_id: str
    subscription: Subscription
    event: bytes  # the event envelope JSON, exactly as it is to be sent
    attempt: int  # 1 for the first attempt


@dataclass(frozen=True, slots=True)
class Receipt:
    status_code: int | None = None
    detail: str | None = None


class Sink(Protocol):
    kind: str

    def target(self, job: Job) -> str | None:
        """The key of the target's shared rate limit, or None for no limit."""
        ...

    async def deliver(self, job: Job) -> Receipt: ...

    async def aclose(self) -> None: ...
