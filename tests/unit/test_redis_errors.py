"""The one translation of Redis errors: which replies mean "try again later".

The errors are built by redis-py's own reply parser from the error lines Redis sends,
so a parser that strips a prefix (``OOM``) or maps a code to a class is what is tested.
"""

from __future__ import annotations

import pytest
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from notify.errors import StoreUnavailable
from notify.redis.errors import reason, refused, translated, unavailable


def reply(line: str) -> Exception:
    """The exception redis-py raises for the error reply ``-<line>``."""
    exc: Exception = BaseParser.parse_error(line)
    return exc


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("OOM command not allowed when used memory > 'maxmemory'.", "out of memory"),
        (
            "OOM command not allowed when used memory > 'maxmemory'. script: 71e6, on @f:1.",
            "out of memory",
        ),
        ("LOADING Redis is loading the dataset in memory", "loading its data"),
        ("READONLY You can't write against a read only replica.", "read-only replica"),
        (
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "no master",
        ),
        (
            "MISCONF Redis is configured to save RDB snapshots, but it's currently unable",
            "cannot persist",
        ),
        ("NOREPLICAS Not enough good replicas to write.", "not enough replicas"),
        ("BUSY Redis is busy running a script.", "busy"),
        ("TRYAGAIN Multiple keys request during rehashing of slot", "busy"),
        ("CLUSTERDOWN The cluster is down", "cluster down"),
    ],
)
def test_availability_replies_mean_try_again(line: str, why: str) -> None:
    exc = reply(line)
    assert reason(exc) == why
    assert not refused(exc)
    store = unavailable(exc)
    assert isinstance(store, StoreUnavailable)
    assert store.status == 503 and store.retry_after == 1.0
    assert store.detail == f"event store unavailable: {why}"


@pytest.mark.parametrize(
    "line",
    [
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "BUSYGROUP Consumer Group name already exists",
        "ERR unknown command 'FOO'",
        "ERR Error running script (call to f_1): @user_script:1: bad argument",
        "NOSCRIPT No matching script. Please use EVAL.",
    ],
)
def test_refusals_are_not_availability_errors(line: str) -> None:
    exc = reply(line)
    assert reason(exc) is None and unavailable(exc) is None
    assert refused(exc) == isinstance(exc, ResponseError)
    with pytest.raises(type(exc)), translated():
        raise exc


@pytest.mark.parametrize(
    ("exc", "why"),
    [
        (ConnectionError("Connection refused"), "unreachable"),
        (TimeoutError("Timeout reading from socket"), "timed out"),
        (ConnectionRefusedError(111, "refused"), "unreachable"),
    ],
)
def test_translated_turns_lost_connections_into_store_unavailable(exc: Exception, why: str) -> None:
    with pytest.raises(StoreUnavailable) as raised, translated():
        raise exc
    assert raised.value.detail == f"event store unavailable: {why}"
    assert raised.value.__cause__ is exc


def test_translated_leaves_other_errors_alone() -> None:
    with pytest.raises(KeyError), translated():
        raise KeyError("x")
    assert unavailable(KeyError("x")) is None and not refused(KeyError("x"))
