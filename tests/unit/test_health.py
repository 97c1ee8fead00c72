"""The health verdicts of dispatcher and worker processes, and the consumer-group errors
that mean "Redis lost the group"."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from notify.redis.groups import is_nogroup, refused_for_good
from notify.workers.health import Health, Loops


def health(live: bool, ready: bool) -> Health:
    h = Health("dispatcher", live=lambda: (live, "live?"), ready=lambda: (ready, "ready?"))
    h.gauge("entries_total", "Log entries dispatched.", lambda: 7)
    h.gauge("seconds_since_dispatch", "Seconds since.", lambda: 0.5)
    return h


@pytest.mark.parametrize(
    ("path", "live", "ready", "status"),
    [
        ("/healthz", True, False, 200),
        ("/healthz", False, True, 503),
        ("/readyz", True, True, 200),
        ("/readyz", True, False, 503),
        ("/metrics", False, False, 200),
        ("/other", True, True, 404),
    ],
)
def test_answers(path: str, live: bool, ready: bool, status: int) -> None:
    assert health(live, ready).answer(path)[0] == status


def test_metrics_are_prometheus_text() -> None:
    text = health(True, True).metrics()
    assert text.startswith(
        "# HELP notify_dispatcher_entries_total Log entries dispatched.\n"
        "# TYPE notify_dispatcher_entries_total counter\n"
        "notify_dispatcher_entries_total 7\n"
        "# HELP notify_dispatcher_seconds_since_dispatch Seconds since.\n"
        "# TYPE notify_dispatcher_seconds_since_dispatch gauge\n"
        "notify_dispatcher_seconds_since_dispatch 0.5\n"
    )
    # then the process's standard series
    assert "\n# TYPE process_resident_memory_bytes gauge\n" in text
    assert "\npython_info{" in text


def test_loops_record_turns_successes_and_failures() -> None:
    loops = Loops()
    loops.failed("dispatch")
    assert "dispatch" in loops.turned and "dispatch" not in loops.succeeded
    assert loops.failures == {"dispatch": 1}
    loops.ok("dispatch")
    assert loops.age("dispatch", loops.succeeded) < 1
    assert loops.age("never", loops.succeeded) >= 0  # counted from the start


@pytest.mark.parametrize(
    ("exc", "gone"),
    [
        (ResponseError("NOGROUP No such key 'k' or consumer group 'g'"), True),
        (ResponseError("no such key"), True),  # XINFO on a stream that is gone
        (ResponseError("BUSYGROUP Consumer Group name already exists"), False),
        (RedisConnectionError("refused"), False),
    ],
)
def test_a_lost_group_is_recognised(exc: Exception, gone: bool) -> None:
    assert is_nogroup(exc) is gone


@pytest.mark.parametrize(
    ("exc", "final"),
    [
        (ResponseError("WRONGTYPE Operation against a key"), True),
        (ResponseError("OOM command not allowed"), False),
        (ResponseError("LOADING Redis is loading"), False),
        (RedisConnectionError("refused"), False),
    ],
)
def test_refused_for_good(exc: Exception, final: bool) -> None:
    assert refused_for_good(exc) is final
