"""notify.js in a real Chromium, from a page of another origin, against a real gateway."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from notify.publisher import Publisher
from tests.e2e.conftest import Stack

START = """
const [options, pattern, name, done] = arguments;
window.lib.then(() => {
  window.clients = window.clients || {};
  const got = [], states = [], errors = [];
  const client = new N.Notify(options);
  client.addEventListener("state", (e) => states.push(e.detail));
  client.addEventListener("error", (e) => errors.push(String(e.detail)));
  client.subscribe(pattern, (event) => got.push(event));
  window.clients[name] = { client, got, states, errors };
  done(client.origin);
}, (error) => done("import failed: " + error));
"""


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout} s")


def open_page(stack: Stack) -> None:
    stack.browser.get(stack.client_page())


def start(stack: Stack, name: str, pattern: str, **options: Any) -> str:
    origin: str = stack.browser.execute_async_script(
        START, {"url": stack.gateway.base_url, **options}, pattern, name
    )
    assert origin.startswith("tab-"), origin
    return origin


def js(stack: Stack, expression: str) -> Any:
    return stack.browser.execute_script("return " + expression)


def got_ids(stack: Stack, name: str) -> list[str]:
    ids: list[str] = js(stack, f"window.clients[{name!r}].got.map((e) => e.id)")
    return ids


def publish(stack: Stack, token: str, channel: str, n: int, start_at: int = 0) -> list[str]:
    ids = []
    with httpx.Client(base_url=stack.gateway.base_url, trust_env=False) as client:
        for i in range(start_at, start_at + n):
            r = client.post(
                "/v1/events",
                json={"channel": channel, "type": "t", "data": {"n": i}},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
    return ids


def streams_open(stack: Stack, transport: str) -> int:
    text = httpx.get(stack.gateway.url("/metrics"), trust_env=False).text
    found = re.search(rf'notify_streams_open\{{transport="{transport}"\}} (\S+)', text)
    return int(float(found.group(1))) if found else 0


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_receives_publishes_and_suppresses_its_own_echo(stack: Stack, transport: str) -> None:
    token = stack.token(publish=["js.>"], subscribe=["js.>"])
    open_page(stack)
    prefix = f"js.{transport}"
    mine = start(stack, "a", f"{prefix}.*", token=token, transport=transport)
    start(stack, "b", f"{prefix}.*", token=token, transport=transport)
    wait_for(lambda: js(stack, "window.clients.a.client.state") == "open", what="open")
    wait_for(lambda: js(stack, "window.clients.b.client.state") == "open", what="b open")
    # two clients of one page share one connection, like two tabs
    assert js(stack, "window.clients.a.client.leading") is True
    assert js(stack, "window.clients.b.client.leading") is False
    time.sleep(0.3)
    sent = publish(stack, token, f"{prefix}.x", 3)
    wait_for(lambda: got_ids(stack, "a") == sent, what="a received 3")
    wait_for(lambda: got_ids(stack, "b") == sent, what="b received 3")

    answer = stack.browser.execute_async_script(
        "const done = arguments[0];"
        f"window.clients.b.client.publish({prefix + '.y'!r}, 'hello', {{n: 99}})"
        ".then(done, (e) => done('failed: ' + e));"
    )
    assert isinstance(answer, dict) and answer["id"], answer
    # the publisher's own client drops its echo; the other one gets it
    wait_for(lambda: got_ids(stack, "a") == [*sent, answer["id"]], what="a got b's event")
    time.sleep(0.5)
    assert got_ids(stack, "b") == sent
    event = js(stack, "window.clients.a.got.at(-1)")
    assert event["data"] == {"n": 99}
    assert event["origin"] != mine and event["origin"].startswith("tab-")
    assert js(stack, "window.clients.a.errors") == []


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_resumes_across_a_gateway_crash_without_loss_or_repeat(
    stack: Stack, transport: str
) -> None:
    token = stack.token(publish=["crash.>"], subscribe=["crash.>"])
    open_page(stack)
    channel = f"crash.{transport}"
    start(stack, "a", channel, token=token, transport=transport)
    wait_for(lambda: js(stack, "window.clients.a.client.state") == "open", what="open")
    time.sleep(0.3)
    sent = publish(stack, token, channel, 3)
    wait_for(lambda: got_ids(stack, "a") == sent, what="first three")

    stack.gateway.kill()  # SIGKILL: no goodbye to the browser
    wait_for(lambda: js(stack, "window.clients.a.client.state") == "connecting", what="notice")
    with Publisher(stack.redis.url) as producer:
        sent += [producer.publish(channel, "t", {"n": n}) for n in range(3, 8)]
    stack.gateway.restart()
    wait_for(lambda: len(got_ids(stack, "a")) >= 8, timeout=30, what="all eight")
    wait_for(lambda: js(stack, "window.clients.a.client.state") == "open", what="open again")
    sent += publish(stack, token, channel, 2, start_at=8)
    wait_for(lambda: len(got_ids(stack, "a")) >= 10, what="live again")
    time.sleep(0.5)  # nothing more may arrive: no repeats
    assert got_ids(stack, "a") == sent
    assert js(stack, "window.clients.a.got.map((e) => e.data.n)") == list(range(10))
    assert js(stack, "window.clients.a.states") == ["open", "connecting", "open"]


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_a_cut_before_the_first_event_resumes_from_the_streams_position(
    stack: Stack, transport: str
) -> None:
    # no event has reached the client: only the position the stream (SSE) or the
    # subscribe answer (WebSocket) carried tells it where to resume from
    token = stack.token(publish=["early.>"], subscribe=["early.>"])
    open_page(stack)
    channel = f"early.{transport}"
    start(stack, "a", channel, token=token, transport=transport)
    wait_for(lambda: js(stack, "window.clients.a.client.state") == "open", what="open")
    time.sleep(0.3)
    stack.gateway.kill()
    wait_for(lambda: js(stack, "window.clients.a.client.state") == "connecting", what="notice")
    with Publisher(stack.redis.url) as producer:
        sent = [producer.publish(channel, "t", {"n": n}) for n in range(4)]
    stack.gateway.restart()
    wait_for(lambda: len(got_ids(stack, "a")) >= 4, timeout=30, what="the four published")
    sent += publish(stack, token, channel, 1, start_at=4)
    wait_for(lambda: len(got_ids(stack, "a")) >= 5, what="live again")
    time.sleep(0.5)
    assert got_ids(stack, "a") == sent
    assert js(stack, "window.clients.a.errors") == []


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_tabs_share_one_connection_and_a_closed_leader_hands_over_without_gap(
    stack: Stack, transport: str
) -> None:
    token = stack.token(publish=["tabs.>"], subscribe=["tabs.>"])
    browser = stack.browser
    open_page(stack)  # closes the previous test's clients
    wait_for(lambda: streams_open(stack, transport) == 0, what="no stream left over")
    handles = []
    for i in range(10):
        if i:
            browser.switch_to.new_window("tab")
            open_page(stack)
        handles.append(browser.current_window_handle)
        start(stack, "t", "tabs.*", token=token, transport=transport)

    def everyone(check: Callable[[], bool]) -> bool:
        for handle in handles:
            browser.switch_to.window(handle)
            if not check():
                return False
        return True

    wait_for(
        lambda: everyone(lambda: js(stack, "window.clients.t.client.state") == "open"),
        what="every tab open",
    )
    assert streams_open(stack, transport) == 1
    sent = publish(stack, token, "tabs.a", 5)
    wait_for(lambda: everyone(lambda: got_ids(stack, "t") == sent), what="every tab got 5")
    leaders = []
    for handle in handles:
        browser.switch_to.window(handle)
        if js(stack, "window.clients.t.client.leading"):
            leaders.append(handle)
    assert len(leaders) == 1

    # the leading tab is closed in the middle of a burst
    burst: list[str] = []

    def produce() -> None:
        with Publisher(stack.redis.url) as producer:
            for n in range(60):
                burst.append(producer.publish("tabs.b", "t", {"n": n}))
                time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.2)
    browser.switch_to.window(leaders[0])
    browser.close()
    handles.remove(leaders[0])
    producer.join()
    everything = sent + burst
    wait_for(
        lambda: everyone(lambda: got_ids(stack, "t") == everything),
        timeout=30,
        what="every remaining tab got every event once, in order",
    )
    assert streams_open(stack, transport) == 1
    for handle in handles[1:]:
        browser.switch_to.window(handle)
        browser.close()
    browser.switch_to.window(handles[0])


def test_renews_its_token_before_it_expires(stack: Stack) -> None:
    open_page(stack)
    # each token lives 4 s longer than the one before; getToken hands them out in turn
    tokens = [stack.token(subscribe=["renew.>"], ttl=4 + 4 * i) for i in range(6)]
    stack.browser.execute_script(
        "window.tokens = arguments[0]; window.asked = 0; window.askedAt = [];"
        "window.getToken = async () => {"
        "  window.askedAt.push(Date.now()); return window.tokens[window.asked++]; };",
        tokens,
    )
    stack.browser.execute_async_script(
        START.replace("new N.Notify(options)", "new N.Notify({...options, getToken})"),
        {"url": stack.gateway.base_url},
        "renew.*",
        "r",
    )
    publisher_token = stack.token(publish=["renew.>"])
    wait_for(lambda: js(stack, "window.clients.r.client.state") == "open", what="open")
    sent: list[str] = []
    # events before, during and after two renewals: the third token is asked for about
    # 7 s in (a token is renewed a fifth of its life, and at least 1 s, before it ends)
    deadline = time.monotonic() + 30
    after_the_second_renewal = 0
    while after_the_second_renewal < 4:
        assert time.monotonic() < deadline, "no second renewal"
        sent += publish(stack, publisher_token, "renew.a", 1, start_at=len(sent))
        if js(stack, "window.asked") >= 3:
            after_the_second_renewal += 1
        time.sleep(0.25)
    wait_for(lambda: got_ids(stack, "r") == sent, what="every event across renewals")
    assert js(stack, "window.asked") >= 3
    # each next token was asked for before the one in use ran out (not after the
    # gateway cut the stream at its expiry)
    asked_at = js(stack, "window.askedAt")
    for n in (1, 2):
        assert asked_at[n] < expiry_ms(tokens[n - 1]), (n, asked_at, tokens[n - 1])
    assert js(stack, "window.clients.r.errors") == []
    assert "closed" not in js(stack, "window.clients.r.states")


def expiry_ms(token: str) -> int:
    """A JWT's ``exp``, in ms (read, not verified)."""
    payload = token.split(".")[1]
    return (
        int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]) * 1000
    )


def test_pure_helpers_in_the_browser(stack: Stack) -> None:
    open_page(stack)
    result = stack.browser.execute_async_script(
        """
        const done = arguments[0];
        window.lib.then((m) => {
          const frames = [];
          const parser = new m.SseParser((f) => frames.push(f));
          parser.push("retry: 3000\\nid: 5-0\\n\\n: keepalive\\n\\nid: 6-0\\nda");
          parser.push('ta: {"a":1}\\r\\n\\r\\nevent: gap\\ndata: {"reason":"x"}\\n\\n');
          done({
            frames,
            matches: [
              m.matches("orders.*", "orders.eu"), m.matches("orders.*", "orders"),
              m.matches("orders.*", "orders.eu.x"), m.matches("orders.>", "orders.eu.x"),
              m.matches("orders.>", "orders"), m.matches("a.b", "a.b"), m.matches(">", "a"),
            ],
            backoff: [0, 1, 2, 10, 30].map((n) => [m.backoff(n, 500, 15000, () => 0),
                                                  m.backoff(n, 500, 15000, () => 1)]),
            renew: [m.renewDelay(100000, 0), m.renewDelay(2000, 0), m.renewDelay(0, 10)],
          });
        });
        """
    )
    assert result["frames"] == [  # absent fields are undefined (null once serialised)
        {"id": "5-0", "event": None, "data": None},
        {"id": "6-0", "event": None, "data": '{"a":1}'},
        {"id": None, "event": "gap", "data": '{"reason":"x"}'},
    ]
    assert result["matches"] == [True, False, False, True, False, True, True]
    assert result["backoff"] == [
        [250, 500],
        [500, 1000],
        [1000, 2000],
        [7500, 15000],
        [7500, 15000],
    ]
    assert result["renew"] == [80000, 1000, 0]
