"""What one gateway process holds: settings, the Redis client, the log, the hub."""

from __future__ import annotations

from dataclasses import dataclass

from notify.api.batcher import AppendBatcher
from notify.api.hub import Hub
from notify.api.limits import FairShare, RateLimiter
from notify.auth import Verifier
from notify.eventlog import EventLog
from notify.redis.client import AsyncRedis
from notify.settings import Settings


@dataclass
class Gateway:
    settings: Settings
    redis: AsyncRedis
    log: EventLog
    hub: Hub
    verifier: Verifier
    limiter: RateLimiter
    batcher: AppendBatcher
    fair: FairShare
