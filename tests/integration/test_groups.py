"""Consumer groups found gone (Redis lost its data) by several readers at once."""

from __future__ import annotations

import asyncio

from notify.redis.client import async_client
from notify.redis.groups import GroupReader
from tests.support.redis import RedisServer


def test_a_group_gone_under_two_readers_is_counted_recreated_once(
    redis_server: RedisServer,
) -> None:
    """Both readers learn the data was lost (the dispatcher reloads its subscriptions on
    that); only the one whose XGROUP CREATE won counts and logs the re-creation, so the
    dispatchers' ``groups_recreated_total`` add up to the groups re-created."""

    async def scenario() -> tuple[list[int], list[int]]:
        clients = [async_client(redis_server.url) for _ in range(2)]
        try:
            readers = [
                GroupReader(c, "s", "g", f"consumer{n}", stale_s=30) for n, c in enumerate(clients)
            ]
            await readers[0].ensure()
            await clients[0].xadd("s", {"f": "v"})
            await clients[0].xgroup_destroy("s", "g")  # as after a restart without data
            # both reads reach Redis before either reader can create the group again
            await clients[0].execute_command("CLIENT", "PAUSE", "300", "WRITE")
            await asyncio.gather(*(r.read(10, 100) for r in readers))
            return [r.lost for r in readers], [r.recreated for r in readers]
        finally:
            for c in clients:
                await c.aclose()

    lost, recreated = asyncio.run(scenario())
    assert lost == [1, 1]
    assert sorted(recreated) == [0, 1]
