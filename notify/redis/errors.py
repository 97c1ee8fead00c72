"""The one translation of Redis failures into notify's errors.

Every adapter of this package goes through it (``translating`` on the adapter classes,
``translated`` around raw commands), and so do the gateway's last-resort handlers and
the replayer: a Redis that is away, loading, read-only or out of memory is the same
``StoreUnavailable`` (503 with ``Retry-After``) on every endpoint, and work that hit it
is retried, never dropped.

redis-py strips the reply code from the errors it has a class for (``OOM ...`` becomes
``OutOfMemoryError("command not allowed ...")``), so those are recognised by class; the
codes it has no class for stay at the head of the message.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import redis
from redis import exceptions as rx

from notify.errors import StoreUnavailable

REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, rx.RedisClusterException)
"""Every error redis-py raises: what a handler of last resort catches (its cluster
client's own errors are no RedisError)."""

# class -> the reason given to clients (most specific first: BusyLoadingError is a
# ConnectionError, MasterDownError a ClusterDownError)
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (rx.BusyLoadingError, "loading its data"),
    (rx.OutOfMemoryError, "out of memory"),
    (rx.ReadOnlyError, "read-only replica"),
    (rx.TimeoutError, "timed out"),
    (rx.ConnectionError, "unreachable"),
    (rx.TryAgainError, "busy"),
    (rx.MasterDownError, "no master"),
    (rx.ClusterDownError, "cluster down"),
    # the cluster client's: no node answers; a slot without a primary (mid-failover)
    (rx.RedisClusterUnreachableError, "unreachable"),
    (rx.SlotNotCoveredError, "cluster down"),
)
# reply codes redis-py has no class for; BUSY is followed by a space (BUSYGROUP is not
# about availability)
_CODES: tuple[tuple[str, str], ...] = (
    ("OOM", "out of memory"),
    ("LOADING", "loading its data"),
    ("READONLY", "read-only replica"),
    ("MASTERDOWN", "no master"),
    ("MISCONF", "cannot persist"),
    ("NOREPLICAS", "not enough replicas"),
    ("BUSY ", "busy"),
    ("TRYAGAIN", "busy"),
    ("CLUSTERDOWN", "cluster down"),
)

TRANSIENT: tuple[type[Exception], ...] = tuple(cls for cls, _ in _REASONS)
"""The classes that always mean "try again later" (a ResponseError may mean it too:
use ``unavailable``)."""


def reason(exc: BaseException) -> str | None:
    """Why Redis cannot serve now, or None when ``exc`` is no availability failure
    (a bug, a wrong type, a script error: retrying would fail the same way)."""
    for cls, why in _REASONS:
        if isinstance(exc, cls):
            return why
    if isinstance(exc, rx.ResponseError):
        text = str(exc)
        for code, why in _CODES:
            if text.startswith(code):
                return why
    return None


def refused(exc: BaseException) -> bool:
    """Whether Redis refused the command as such (wrong type, bad script, unknown
    command): the same command would be refused again, unlike one that met a Redis
    out of memory, loading or read-only."""
    return isinstance(exc, rx.ResponseError) and reason(exc) is None


def unavailable(exc: BaseException) -> StoreUnavailable | None:
    """The ``StoreUnavailable`` that ``exc`` stands for, or None."""
    if isinstance(exc, StoreUnavailable):
        return exc
    why = reason(exc)
    return None if why is None else _unavailable(why)


def _unavailable(why: str) -> StoreUnavailable:
    return StoreUnavailable(f"event store unavailable: {why}")


FAILURES: collections.Counter[str] = collections.Counter()
"""Redis errors met by this process, by reason ("refused" for a command Redis refused
as such): read into the gateway's ``notify_redis_errors_total`` (a plain count here, so
an adapter needs no metrics library)."""


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Redis failures that mean "try again later" become ``StoreUnavailable``; others
    pass unchanged. A bare socket error (one redis-py did not wrap) is one too. Each is
    counted in :data:`FAILURES`."""
    try:
        yield
    except REDIS_ERRORS as exc:
        why = reason(exc)
        FAILURES[why or ("refused" if isinstance(exc, rx.ResponseError) else "other")] += 1
        if why is None:
            raise
        raise _unavailable(why) from exc
    except OSError as exc:
        FAILURES["unreachable"] += 1
        raise _unavailable("unreachable") from exc


F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)


def _wrap(fn: F) -> F:
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def gen(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            with translated():
                async for item in fn(*args, **kwargs):
                    yield item

        return gen  # type: ignore[return-value]

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        with translated():
            return await fn(*args, **kwargs)

    return call  # type: ignore[return-value]


def translating(cls: C) -> C:
    """Class decorator: every public ``async`` method of an adapter answers Redis
    failures with ``StoreUnavailable`` (see ``translated``)."""
    for name, member in list(vars(cls).items()):
        if name.startswith("_"):
            continue
        if inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member):
            setattr(cls, name, _wrap(member))
    return cls


__all__ = [
    "FAILURES",
    "REDIS_ERRORS",
    "TRANSIENT",
    "reason",
    "refused",
    "translated",
    "translating",
    "unavailable",
]
