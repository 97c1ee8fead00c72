"""notify.js takes a silent SSE stream for dead and resumes on a new one (README, "In the
browser": a connection silent for 45 s is treated as dead). The gateway of this module
sends keepalives only every 300 s and the client's ``idleMs`` is 1.5 s, so an idle
stream goes silent long enough, and the test does not wait 45 s."""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_notify_js import got_ids, js, open_page, publish, streams_open, wait_for

IDLE_MS = 1500

# The page notes its own requests to /v1/stream (the real fetch makes them) and, the
# first time its client gives a stream up, publishes one event, answered before the next
# stream is requested: only a resume from the last id can deliver it.
START = """
const [options, channel, publisherToken, done] = arguments;
window.lib.then(() => {
  const realFetch = window.fetch;
  const got = [], states = [], errors = [], streams = [];
  const idle = { got, states, errors, streams, publishing: null, midway: null, midwayAt: null };
  window.clients = { idle };
  window.fetch = async (input, init) => {
    if (String(input).includes("/v1/stream?")) {
      await idle.publishing; // the event of the gap is in the log before the next stream
      streams.push({ at: performance.now(), lastEventId: init.headers["Last-Event-ID"] || null });
    }
    return realFetch(input, init);
  };
  const client = (idle.client = new N.Notify(options));
  const show = () => {
    document.getElementById("log").textContent = JSON.stringify(
      { states, streams, got: got.map((e) => e.id) }, null, 1);
  };
  client.addEventListener("state", (e) => {
    states.push(e.detail);
    if (e.detail === "connecting" && !idle.publishing) {
      idle.publishing = realFetch(options.url + "/v1/events", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + publisherToken },
        body: JSON.stringify({ channel, type: "t", data: { n: 1 } }),
      }).then((r) => r.json()).then((body) => {
        idle.midway = body.id;
        idle.midwayAt = performance.now();
        show();
      });
    }
    show();
  });
  client.addEventListener("error", (e) => errors.push(String(e.detail)));
  client.subscribe(channel, (event) => { got.push(event); show(); });
  // the default, read from a client that follows nothing (so it never connects)
  const plain = new N.Notify({ url: options.url, token: options.token, share: false });
  done([client.idleMs, plain.idleMs]);
  plain.close();
}, (error) => done("import failed: " + error));
"""


@pytest.fixture(scope="module")
def quiet(stack: Stack) -> Stack:
    """This module's stack with a gateway that keeps idle streams silent for 300 s and
    logs every request it answers."""
    stack.gateway.env.update({"NOTIFY_KEEPALIVE_SECONDS": "300", "NOTIFY_ACCESS_LOG": "1"})
    stack.gateway.restart()
    return stack


def stream_requests(stack: Stack, channel: str) -> int:
    """The requests for ``channel``'s stream in the gateway's access log."""
    pattern = rf"GET /v1/stream\?channel={re.escape(channel)} "
    return len(re.findall(pattern, stack.gateway.log_text()))


def test_a_silent_stream_is_dropped_and_resumed_from_its_last_id(quiet: Stack) -> None:
    stack = quiet
    channel = "idle.a"
    token = stack.token(publish=["idle.>"], subscribe=["idle.>"])
    open_page(stack)
    idle_ms = stack.browser.execute_async_script(
        START, {"url": stack.gateway.base_url, "token": token, "idleMs": IDLE_MS}, channel, token
    )
    assert idle_ms == [IDLE_MS, 45000], idle_ms  # the option, and the README's 45 s
    wait_for(lambda: js(stack, "window.clients.idle.client.state") == "open", what="open")
    [first] = publish(stack, token, channel, 1)
    wait_for(lambda: got_ids(stack, "idle") == [first], what="the first event")

    # nothing more is sent: after IDLE_MS the client gives the stream up, and a new
    # request, resuming after the first event, brings the one published meanwhile (the
    # client keeps doing so every IDLE_MS while the channel stays quiet)
    wait_for(
        lambda: len(js(stack, "window.clients.idle.states")) >= 3,
        timeout=IDLE_MS / 1000 + 8,
        what="dropped and reopened",
    )
    assert js(stack, "window.clients.idle.states")[:3] == ["open", "connecting", "open"]
    streams = js(stack, "window.clients.idle.streams")
    assert len(streams) >= 2, streams
    assert streams[1]["lastEventId"] == first, streams
    assert streams[1]["at"] - streams[0]["at"] >= IDLE_MS, streams
    midway_at = js(stack, "window.clients.idle.midwayAt")
    assert streams[0]["at"] < midway_at <= streams[1]["at"], (midway_at, streams)
    wait_for(lambda: stream_requests(stack, channel) >= 2, what="the gateway saw two streams")
    midway = js(stack, "window.clients.idle.midway")
    wait_for(lambda: got_ids(stack, "idle") == [first, midway], what="the event of the gap")
    # the dropped stream was closed, not left open beside the new one
    wait_for(lambda: streams_open(stack, "sse") == 1, what="one stream open")

    [last] = publish(stack, token, channel, 1, start_at=2)
    wait_for(lambda: len(got_ids(stack, "idle")) >= 3, what="the last event")
    time.sleep(0.5)  # nothing more may arrive: no repeats
    assert got_ids(stack, "idle") == [first, midway, last]
    assert js(stack, "window.clients.idle.got.map((e) => e.data.n)") == [0, 1, 2]
    assert js(stack, "window.clients.idle.errors") == []
    stack.shot("notify-js-idle-resume")
    js(stack, "window.clients.idle.client.close()")
