"""``/metrics`` of ``notify serve --workers 2``: every scrape, whichever process answers
it, counts each event once and each open stream once."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from tests.integration.clients import sse
from tests.support.factories import TokenMaker
from tests.support.procs import Gateway
from tests.support.redis import RedisServer

PUBLISHES = 30
SCRAPES = 20


class MultiGateway(Gateway):
    @property
    def command(self) -> list[str]:
        return [*super().command, "--workers", "2"]


def _value(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} missing from\n{text}"
    return float(found.group(1))


@pytest.mark.asyncio
async def test_every_scrape_counts_each_event_once(
    redis_server: RedisServer, jwt_secret: str, make_token: TokenMaker, tmp_path: Path
) -> None:
    gw = MultiGateway(redis_url=redis_server.url, jwt_secret=jwt_secret, directory=tmp_path)
    gw.start()
    try:
        token = make_token(publish=[">"], subscribe=[">"])
        async with sse(gw.base_url, ["m.>"], token) as s1, sse(gw.base_url, ["m.>"], token) as s2:
            # a connection each: the kernel spreads them over both processes
            for n in range(PUBLISHES):
                async with httpx.AsyncClient(base_url=gw.base_url, trust_env=False) as c:
                    r = await c.post(
                        "/v1/events",
                        json={"channel": "m.a", "type": "t", "data": n},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    assert r.status_code == 202, r.text
            await s1.events(PUBLISHES)
            await s2.events(PUBLISHES)
            await asyncio.sleep(1.5)  # one housekeeping tick moves the sent counts over
            seen = set()
            for _ in range(SCRAPES):
                async with httpx.AsyncClient(base_url=gw.base_url, trust_env=False) as c:
                    text = (await c.get("/metrics")).text
                seen.add(
                    (
                        _value(text, "notify_events_published_total"),
                        _value(text, "notify_events_sent_total"),
                        _value(text, 'notify_streams_open{transport="sse"}'),
                        _value(text, "notify_reader_up"),
                        _value(
                            text,
                            'notify_http_requests_total{method="POST",route="/v1/events",'
                            'status="202"}',
                        ),
                        _value(
                            text,
                            "notify_http_request_duration_seconds_count"
                            '{method="POST",route="/v1/events"}',
                        ),
                    )
                )
            assert seen == {(PUBLISHES, 2 * PUBLISHES, 2, 1, PUBLISHES, PUBLISHES)}
    finally:
        gw.kill()
