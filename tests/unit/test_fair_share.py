"""FairShare: one client's API requests run at most ``limit`` at a time, others' go by."""

from __future__ import annotations

import asyncio

from notify.api.limits import FairShare


def test_a_flooding_client_waits_its_turn_and_others_go_by() -> None:
    async def scenario() -> tuple[int, list[str], int]:
        fair = FairShare(limit=2)
        release = asyncio.Event()
        running: dict[str, int] = {"mallory": 0, "bob": 0}
        peak = 0
        order: list[str] = []

        async def request(client: str) -> None:
            nonlocal peak
            async with fair.turn(client):
                running[client] += 1
                peak = max(peak, running["mallory"])
                order.append(client)
                if client == "mallory":
                    await release.wait()
                running[client] -= 1

        flood = [asyncio.create_task(request("mallory")) for _ in range(20)]
        await asyncio.sleep(0.01)
        await asyncio.wait_for(request("bob"), 1.0)  # not queued behind mallory's 20
        release.set()
        await asyncio.gather(*flood)
        return peak, order, len(fair)

    peak, order, left = asyncio.run(scenario())
    assert peak == 2  # never more than her share at once
    assert order.index("bob") == 2  # bob ran as soon as he came, after her first two
    assert order.count("mallory") == 20  # her requests wait; none is refused
    assert left == 0  # no state is kept for clients with nothing in flight


def test_a_released_turn_frees_its_slot_while_the_request_goes_on() -> None:
    """A stream releases its turn once it starts answering (``release``): the client's
    next request runs though the stream is still open."""

    async def scenario() -> tuple[bool, int]:
        fair = FairShare(limit=1)
        streaming = asyncio.Event()
        close = asyncio.Event()

        async def stream() -> None:
            async with fair.turn("alice") as release:
                release()
                release()  # idempotent: a second call frees nothing more
                streaming.set()
                await close.wait()

        task = asyncio.create_task(stream())
        await streaming.wait()
        async with asyncio.timeout(1.0), fair.turn("alice"):
            ran = True
        async with asyncio.timeout(1.0), fair.turn("alice"), fair.turn("bob"):
            pass
        close.set()
        await task
        return ran, len(fair)

    ran, left = asyncio.run(scenario())
    assert ran and left == 0


def test_an_unreleased_turn_holds_its_slot() -> None:
    async def scenario() -> bool:
        fair = FairShare(limit=1)
        async with fair.turn("alice"):
            try:
                async with asyncio.timeout(0.05), fair.turn("alice"):
                    return False
            except TimeoutError:
                return True

    assert asyncio.run(scenario())
