"""Retry schedule maths: attempts, jitter bounds, Retry-After."""

from __future__ import annotations

import random

import pytest

from notify.retry import JITTER, next_delay, parse_retry_after
from notify.settings import DEFAULT_RETRY_SCHEDULE

SCHEDULE = DEFAULT_RETRY_SCHEDULE  # 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h


def test_the_documented_schedule_and_jitter() -> None:
    # README figures, pinned by literals (the constants they describe could drift)
    assert DEFAULT_RETRY_SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert JITTER == 0.2


@pytest.mark.parametrize(
    ("attempts", "base"),
    [(1, 5), (2, 300), (3, 1800), (4, 7200), (5, 18000), (6, 36000), (7, 36000)],
)
def test_delay_stays_within_jitter(attempts: int, base: float) -> None:
    rng = random.Random(attempts)
    delays = [next_delay(SCHEDULE, attempts, rng=rng) for _ in range(500)]
    # ±20 % (README), by literals: a narrower or wider jitter fails one of the two
    assert all(d is not None and base * 0.8 <= d <= base * 1.2 for d in delays)
    spread = [d for d in delays if d is not None]
    assert max(spread) - min(spread) > base * 0.3  # 500 draws span most of the 0.4


@pytest.mark.parametrize(
    ("schedule", "attempts", "left"),
    [
        ((1, 1, 1), 1, True),
        ((1, 1, 1), 3, True),
        ((1, 1, 1), 4, False),  # "1,1,1" means four attempts in all
        ((), 1, False),
        (SCHEDULE, 7, True),
        (SCHEDULE, 8, False),
    ],
)
def test_attempts_run_out(schedule: tuple[float, ...], attempts: int, left: bool) -> None:
    assert (next_delay(schedule, attempts) is not None) is left


def test_retry_after_replaces_the_delay_but_uses_an_attempt() -> None:
    assert next_delay(SCHEDULE, 1, retry_after=42) == 42
    assert next_delay(SCHEDULE, 1, retry_after=10**9) == 86400  # capped at a day
    assert next_delay(SCHEDULE, 1, retry_after=0) == 0.0  # "now" means now
    assert next_delay(SCHEDULE, 1, retry_after=-3) == 0.0
    assert next_delay((1,), 2, retry_after=1) is None


def test_a_zero_delay_stays_zero() -> None:
    # NOTIFY_RETRY_SCHEDULE=0,0 retries at once: jitter never makes a delay up
    assert next_delay((0, 0), 1, rng=random.Random(1)) == 0.0
    assert next_delay((0, 0), 2) == 0.0


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError) as info:
        next_delay(SCHEDULE, 0)
    assert str(info.value) == "attempts counts the attempts made, starting at 1"


NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("120", 120.0),
        (" 3 ", 3.0),
        ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),  # in the past: now
        ("Tue, 14 Nov 2023 23:13:50 +0100", 30.0),  # another zone, honoured
        ("Tue, 14 Nov 2023 22:13:50 -0000", 30.0),  # RFC 5322's "zone unknown": UTC
        ("soon", None),
        ("-5", None),
        ("99999999999", 86400.0),  # capped at a day
        ("Tue, 14 Nov 2073 22:13:50 GMT", 86400.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected
