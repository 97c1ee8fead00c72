"""Retry schedule maths (pure).

The first attempt is immediate; ``schedule[i]`` is the delay before retry ``i + 1``,
so a schedule of n delays allows n + 1 attempts. Delays get ±20 % jitter so that a
receiver coming back up is not hit by every retry at once. A ``Retry-After`` from the
receiver replaces the scheduled delay (capped) but still uses up an attempt, so a
receiver answering 429 forever cannot keep a delivery alive forever.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

JITTER = 0.2
MAX_RETRY_AFTER = 86400.0


def jittered(delay: float, rng: random.Random | None = None) -> float:
    spread = (rng or random).uniform(-JITTER, JITTER)
    return max(0.0, delay * (1 + spread))


def next_delay(
    schedule: Sequence[float],
    attempts: int,
    *,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait after ``attempts`` failed attempts, or None when none are left."""
    if attempts < 1:
        raise ValueError("attempts counts the attempts made, starting at 1")
    if attempts > len(schedule):
        return None
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
    return jittered(schedule[attempts - 1], rng)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from ``now`` named by a Retry-After header (delta-seconds or HTTP date)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(max(moment.timestamp() - now, 0.0), MAX_RETRY_AFTER)


def as_datetime(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)
