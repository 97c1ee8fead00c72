"""History retention against a real Redis: by age (``NOTIFY_HISTORY_SECONDS``) and by
size of the global log (``NOTIFY_HISTORY_MAX_EVENTS``). Redis trims whole stream nodes
(100 entries), so each test goes past a few."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.integration.clients import publish_batch
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import Gateway


def history(gw: Gateway, token: str, channel: str) -> list[str]:
    with httpx.Client(base_url=gw.base_url, trust_env=False) as c:
        r = c.get(
            "/v1/events",
            params={"channel": channel, "limit": 1000},
            headers={"authorization": f"Bearer {token}"},
        )
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return [e["id"] for e in events]


def batch(channel: str, n: int) -> list[dict[str, Any]]:
    return [{"channel": channel, "type": "t", "data": i} for i in range(n)]


def test_history_older_than_its_age_is_dropped(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    gw = gateway_factory(NOTIFY_HISTORY_SECONDS="1")
    token = make_token(publish=[">"], subscribe=[">"])
    old = publish_batch(gw.base_url, token, batch("aged", 250))
    assert history(gw, token, "aged")[:1] == old[:1]  # kept while young
    time.sleep(1.2)  # the age itself is what is tested: it has to pass
    new = publish_batch(gw.base_url, token, batch("aged", 1))  # appends trim
    for channel in ("aged", ">"):  # the channel's stream and the global log
        kept = history(gw, token, channel)
        assert old[0] not in kept and kept[-1] == new[0], channel
        assert len(kept) <= 100 + 1, channel  # at most the one node still holding young


def test_the_log_keeps_about_its_maximum(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    gw = gateway_factory(NOTIFY_HISTORY_MAX_EVENTS="100")
    token = make_token(publish=[">"], subscribe=[">"])
    ids: list[str] = []
    for n in range(4):
        ids += publish_batch(gw.base_url, token, batch(f"many.c{n}", 150))
    kept = history(gw, token, "many.>")  # a pattern reads the global log
    assert ids[0] not in kept and kept[-1] == ids[-1]
    assert 100 <= len(kept) <= 100 + 100  # the cap, plus at most one node
    assert kept == ids[-len(kept) :]  # the newest, in order
