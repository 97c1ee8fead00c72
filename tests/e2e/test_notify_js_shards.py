"""notify.js in Chromium against a sharded gateway (``NOTIFY_SHARDS=3`` on one Redis):
whatever cuts a stream (a gateway crash, the leading tab closing, an idle SSE stream
given up) it resumes from the cursor the gateway gave, over every shard, so every event
comes exactly once and each channel's in order, over SSE and WebSocket.

One shard's ids run an hour ahead of the others' (``skew_ahead``, as a Cluster primary
whose clock ran ahead leaves them): a client resuming from the id of an event of that
shard, instead of the cursor, would skip what the other shards took during the cut.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from notify.publisher import Publisher
from notify.shards import Positions, Vector, shard_of
from tests.e2e.conftest import Stack
from tests.e2e.test_notify_js import js, open_page, publish, start, wait_for
from tests.integration.test_client_shards import (
    AHEAD,
    SHARDS,
    check_once,
    cursor_after,
    skew_ahead,
    spread,
)

GATEWAY_ENV = {"NOTIFY_SHARDS": str(SHARDS), "NOTIFY_KEEPALIVE_SECONDS": "300"}
"""Three shards; keepalives so rare that a quiet SSE stream goes silent (idle test)."""
IDLE_MS = 1500

# Notes where each new stream starts from, in order: the Last-Event-ID of each SSE
# request, the last_event_id of each WebSocket subscribe (null: from now). A stream
# request waits for `window.hold` first (the idle test publishes meanwhile).
RECORD = """
window.resumes = [];
window.hold = null;
const realFetch = (window.realFetch = window.fetch);
window.fetch = async (input, init) => {
  if (String(input).includes("/v1/stream?")) {
    await window.hold;
    window.resumes.push((init && init.headers && init.headers["Last-Event-ID"]) || null);
  }
  return realFetch(input, init);
};
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  const frame = JSON.parse(data);
  if (frame.op === "subscribe") window.resumes.push(frame.last_event_id || null);
  return send.call(this, data);
};
"""

# Writes what a client got (per channel, the round of each event in arrival order) and
# where its streams resumed from into the page, for the screenshot.
RENDER = """
const [name, title, shards] = arguments;
const c = window.clients[name];
const rounds = {};
for (const e of c.got) (rounds[e.channel] = rounds[e.channel] || []).push(e.data.n);
const lines = [title, "", "state: " + c.client.state + "   leading: " + c.client.leading, "",
  "channel           shard   rounds received, in order"];
for (const [channel, shard] of shards) {
  lines.push(channel.padEnd(18) + String(shard).padEnd(8) + (rounds[channel] || []).join(" "));
}
const distinct = new Set(c.got.map((e) => e.id)).size;
lines.push("", "events: " + c.got.length + "   distinct ids: " + distinct);
lines.push("", "streams started from (Last-Event-ID / last_event_id):");
let previous, times = 0;
const flush = () => {
  if (times) lines.push("  " + (previous === null ? "(none: from now)" : previous) +
                        (times > 1 ? "   x" + times : ""));
};
for (const r of window.resumes) {
  if (r === previous) { times += 1; continue; }
  flush(); previous = r; times = 1;
}
flush();
document.getElementById("log").textContent = lines.join("\\n");
document.title = title;
"""

Sent = dict[str, list[str]]


@pytest.fixture(scope="module")
def skewed(stack: Stack) -> Stack:
    """This module's stack (three shards) with the ids of shard ``AHEAD`` an hour ahead."""
    skew_ahead(stack.redis.url, spread("warm")[-1])
    return stack


def settle(check: Callable[[], Any], timeout: float = 20.0) -> None:
    """Wait for ``check`` without failing: the assertion after it shows what is wrong."""
    with contextlib.suppress(AssertionError):
        wait_for(check, timeout=timeout)


def received(stack: Stack, name: str) -> list[tuple[str, str]]:
    got: list[list[str]] = js(stack, f"window.clients[{name!r}].got.map((e) => [e.id, e.channel])")
    return [(event_id, channel) for event_id, channel in got]


def publish_round(stack: Stack, token: str, channels: list[str], n: int, sent: Sent) -> None:
    for channel in channels:
        sent[channel] += publish(stack, token, channel, 1, start_at=n)


def publish_in_cut(stack: Stack, channels: list[str], n: int, sent: Sent) -> None:
    """One event per channel, straight into the store (the gateway is down)."""
    with Publisher(stack.redis.url) as producer:
        for channel in channels:
            sent[channel].append(producer.publish(channel, "t", {"n": n}))


def total(sent: Sent) -> int:
    return sum(map(len, sent.values()))


def position(cursor: str) -> Vector:
    assert cursor.startswith("~") and cursor.count(".") == SHARDS - 1, cursor
    return Positions(SHARDS).parse(cursor)


def before_a_cut(stack: Stack, token: str, name: str, channels: list[str], sent: Sent) -> Vector:
    """A round on every channel, then one more on the shard ahead so that its event is
    the last before the cut; the position just after all of them."""
    publish_round(stack, token, channels, 1, sent)
    settle(lambda: len(received(stack, name)) == total(sent))
    sent[channels[-1]] += publish(stack, token, channels[-1], 1, start_at=2)
    settle(lambda: len(received(stack, name)) == total(sent))
    got = received(stack, name)
    check_once(got, sent)
    assert got[-1][1] == channels[-1]
    return cursor_after(event_id for event_id, _ in got)


def render(stack: Stack, name: str, title: str, channels: list[str]) -> None:
    shards = [[c, shard_of(c, SHARDS)] for c in channels]
    stack.browser.execute_script(RENDER, name, title, shards)


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_resumes_exactly_over_three_shards_across_gateway_crashes(
    skewed: Stack, transport: str
) -> None:
    stack = skewed
    channels = spread(f"shards.{transport}")
    assert {shard_of(c, SHARDS) for c in channels} == set(range(SHARDS))
    assert shard_of(channels[-1], SHARDS) == AHEAD
    token = stack.token(publish=["shards.>"], subscribe=["shards.>"])
    sent: Sent = {c: [] for c in channels}
    open_page(stack)
    stack.browser.execute_script(RECORD)
    start(stack, "a", f"shards.{transport}.*", token=token, transport=transport)
    wait_for(lambda: js(stack, "window.clients.a.client.state") == "open", what="open")
    time.sleep(0.3)

    # a cut before any event: the position the stream opened with is where it resumes
    stack.gateway.kill()
    wait_for(lambda: js(stack, "window.clients.a.client.state") == "connecting", what="notice")
    publish_in_cut(stack, channels, 0, sent)
    stack.gateway.restart()
    settle(lambda: len(received(stack, "a")) == total(sent), timeout=30)
    check_once(received(stack, "a"), sent)

    # a cut after events, the last one of the shard ahead
    expected = before_a_cut(stack, token, "a", channels, sent)
    wait_for(lambda: js(stack, "window.clients.a.client.state") == "open", what="open again")
    mark = len(js(stack, "window.resumes"))
    stack.gateway.kill()
    wait_for(lambda: js(stack, "window.clients.a.client.state") == "connecting", what="cut")
    publish_in_cut(stack, channels, 3, sent)
    stack.gateway.restart()
    settle(lambda: len(received(stack, "a")) >= total(sent), timeout=30)
    wait_for(lambda: js(stack, "window.clients.a.client.state") == "open", what="open at last")
    publish_round(stack, token, channels, 4, sent)
    settle(lambda: len(received(stack, "a")) >= total(sent))
    time.sleep(0.5)  # nothing more may arrive: no repeats
    render(stack, "a", f"notify.js over 3 shards, {transport}: two gateway crashes", channels)
    stack.shot(f"notify-js-shards-{transport}")

    check_once(received(stack, "a"), sent)
    resumes: list[str | None] = js(stack, "window.resumes")
    assert resumes[0] is None, resumes  # the first stream starts from now
    first_cut = {position(r) for r in resumes[1:mark] if r is not None}
    assert len(first_cut) == 1 and None not in resumes[1:mark], resumes
    assert len(resumes) > mark, resumes
    for cursor in resumes[mark:]:
        assert cursor is not None and position(cursor) == expected, (cursor, expected)
    states = js(stack, "window.clients.a.states")
    assert states == ["open", "connecting", "open", "connecting", "open"], states
    assert js(stack, "window.clients.a.errors") == []


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_a_follower_taking_the_lead_resumes_from_the_cursor(skewed: Stack, transport: str) -> None:
    # two clients of one page share one connection as two tabs do; the leading one
    # closes while the gateway is down, and the other resumes from the position the
    # leader passed on with each event
    stack = skewed
    channels = spread(f"lead.{transport}")
    token = stack.token(publish=["lead.>"], subscribe=["lead.>"])
    sent: Sent = {c: [] for c in channels}
    open_page(stack)
    stack.browser.execute_script(RECORD)
    start(stack, "a", f"lead.{transport}.*", token=token, transport=transport)
    start(stack, "b", f"lead.{transport}.*", token=token, transport=transport)
    wait_for(lambda: js(stack, "window.clients.a.client.state") == "open", what="a open")
    wait_for(lambda: js(stack, "window.clients.b.client.state") == "open", what="b open")
    assert js(stack, "window.clients.a.client.leading") is True
    assert js(stack, "window.clients.b.client.leading") is False
    time.sleep(0.3)
    expected = before_a_cut(stack, token, "b", channels, sent)

    mark = len(js(stack, "window.resumes"))
    stack.gateway.kill()
    wait_for(lambda: js(stack, "window.clients.b.client.state") == "connecting", what="cut")
    js(stack, "window.clients.a.client.close()")
    wait_for(lambda: js(stack, "window.clients.b.client.leading"), what="b leads")
    publish_in_cut(stack, channels, 3, sent)
    stack.gateway.restart()
    settle(lambda: len(received(stack, "b")) >= total(sent), timeout=30)
    wait_for(lambda: js(stack, "window.clients.b.client.state") == "open", what="b open")
    publish_round(stack, token, channels, 4, sent)
    settle(lambda: len(received(stack, "b")) >= total(sent))
    time.sleep(0.5)
    render(
        stack, "b", f"notify.js over 3 shards, {transport}: the follower took the lead", channels
    )
    stack.shot(f"notify-js-shards-handover-{transport}")

    check_once(received(stack, "b"), sent)
    resumes: list[str | None] = js(stack, "window.resumes")
    assert len(resumes) > mark, resumes
    for cursor in resumes[mark:]:
        assert cursor is not None and position(cursor) == expected, (cursor, expected)
    assert js(stack, "window.clients.b.errors") == []


# Once armed, the first time the client gives its stream up, the page publishes one
# event per channel in a batch, stored before the next stream is requested.
ARM = """
const [url, token, events] = arguments;
const client = window.clients.i.client;
window.batch = null;
const armed = (e) => {
  if (e.detail !== "connecting") return;
  client.removeEventListener("state", armed);
  window.heldAt = window.resumes.length;
  window.hold = window.realFetch(url + "/v1/events/batch", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
    body: JSON.stringify({ events }),
  }).then((r) => r.json()).then((body) => { window.batch = body.ids; });
};
client.addEventListener("state", armed);
"""


def test_an_idle_sse_stream_resumes_from_the_cursor(skewed: Stack) -> None:
    # the gateway keeps quiet streams silent (keepalives every 300 s): after IDLE_MS the
    # client takes its stream for dead and requests another, from its last position
    stack = skewed
    channels = spread("idle")
    token = stack.token(publish=["idle.>"], subscribe=["idle.>"])
    sent: Sent = {c: [] for c in channels}
    open_page(stack)
    stack.browser.execute_script(RECORD)
    start(stack, "i", "idle.*", token=token, transport="sse", idleMs=IDLE_MS)
    wait_for(lambda: js(stack, "window.clients.i.client.state") == "open", what="open")
    time.sleep(0.3)
    expected = before_a_cut(stack, token, "i", channels, sent)

    events = [{"channel": c, "type": "t", "data": {"n": 3}} for c in channels]
    stack.browser.execute_script(ARM, stack.gateway.base_url, token, events)
    ids = wait_for(lambda: js(stack, "window.batch"), timeout=IDLE_MS / 1000 + 10, what="batch")
    for channel, event_id in zip(channels, ids, strict=True):
        sent[channel].append(event_id)
    settle(lambda: len(received(stack, "i")) >= total(sent))
    publish_round(stack, token, channels, 4, sent)
    settle(lambda: len(received(stack, "i")) >= total(sent))
    time.sleep(0.5)
    render(stack, "i", f"notify.js over 3 shards, sse: idle streams (idleMs {IDLE_MS})", channels)
    stack.shot("notify-js-shards-idle")

    check_once(received(stack, "i"), sent)
    resumes: list[str | None] = js(stack, "window.resumes")
    held_at: int = js(stack, "window.heldAt")
    assert held_at >= 1 and len(resumes) > held_at, (held_at, resumes)
    cursor = resumes[held_at]
    assert cursor is not None and position(cursor) == expected, (cursor, expected)
    assert all(r is not None and r.startswith("~") for r in resumes[1:]), resumes
    states = js(stack, "window.clients.i.states")
    assert states[:3] == ["open", "connecting", "open"], states
    assert js(stack, "window.clients.i.errors") == []
