"""The loop every dispatcher duty runs in: call a step until stopped, back off on failure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from notify.workers.health import Loops

log = logging.getLogger("notify.dispatcher")


async def backoff_loop(
    stop: asyncio.Event,
    step: Callable[[], Awaitable[object]],
    name: str,
    *,
    once: bool = False,
    loops: Loops | None = None,
) -> None:
    """Call ``step`` until ``stop``; on failure wait (0.1 s doubling to 5 s) and go on."""
    delay = 0.1
    while not stop.is_set():
        try:
            await step()
        except Exception as exc:
            if loops is not None:
                loops.failed(name)
            log.warning(
                "%s failed (%s: %s); retrying in %.1f s", name, type(exc).__name__, exc, delay
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 5.0)
            continue
        if loops is not None:
            loops.ok(name)
        delay = 0.1
        if once:
            return
