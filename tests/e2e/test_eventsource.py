"""A real browser's EventSource against a real gateway that is killed and restarted."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver

from notify.publisher import Publisher
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.ports import free_port
from tests.support.redis import RedisServer

PAGE = """<!doctype html>
<html><body><pre id="log"></pre><script>
const params = new URLSearchParams(location.search);
window.received = [];
window.errors = 0;
window.opens = 0;
const source = new EventSource(params.get("gateway") + "/v1/stream?channel=e2e.*&token="
                               + encodeURIComponent(params.get("token")));
source.onmessage = (message) => {
  const event = JSON.parse(message.data);
  window.received.push([message.lastEventId, event.id, event.data.n]);
  document.getElementById("log").textContent += event.id + "\\n";
};
source.onerror = () => { window.errors += 1; };
source.onopen = () => { window.opens += 1; };
</script></body></html>
"""


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "index.html").write_text(PAGE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout} s")


def test_eventsource_receives_everything_across_a_gateway_crash(
    browser: webdriver.Chrome,
    page_server: str,
    redis_server: RedisServer,
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
) -> None:
    gateway = gateway_factory(NOTIFY_CORS_ORIGINS=page_server)
    token = make_token(publish=["e2e.>"], subscribe=["e2e.>"])
    browser.get(f"{page_server}/index.html?gateway={gateway.base_url}&token={token}")
    wait_for(lambda: browser.execute_script("return window.errors === 0"))

    def received() -> list[list[Any]]:
        value: list[list[Any]] = browser.execute_script("return window.received")
        return value

    published: list[str] = []
    with httpx.Client(base_url=gateway.base_url, trust_env=False) as client:
        # the stream may take a moment to open; publish once it is attached
        time.sleep(1.0)
        for n in range(3):
            r = client.post(
                "/v1/events",
                json={"channel": "e2e.a", "type": "t", "data": {"n": n}},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 202
            published.append(r.json()["id"])
    wait_for(lambda: len(received()) == 3)

    gateway.kill()  # SIGKILL: no goodbye to the browser
    with Publisher(redis_server.url) as producer:
        for n in range(3, 8):
            published.append(producer.publish("e2e.b", "t", {"n": n}))
    gateway.start()
    wait_for(lambda: len(received()) >= 8, timeout=30)
    time.sleep(1.0)  # nothing more may arrive: no duplicates
    got = received()
    assert [row[1] for row in got] == published
    assert [row[0] for row in got] == published  # lastEventId is the event id
    assert [row[2] for row in got] == list(range(8))
    assert browser.execute_script("return window.errors") >= 1  # it did see the outage


def test_eventsource_cut_before_its_first_event_resumes_from_its_position(
    browser: webdriver.Chrome,
    page_server: str,
    redis_server: RedisServer,
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
) -> None:
    """The first frame (``retry`` and ``id``, no ``data``) fires nothing but sets the
    browser's last event id: a stream cut before any event resumes from where it
    opened, so what was published during the outage arrives, once."""
    gateway = gateway_factory(NOTIFY_CORS_ORIGINS=page_server)
    token = make_token(publish=["e2e.>"], subscribe=["e2e.>"])
    browser.get(f"{page_server}/index.html?gateway={gateway.base_url}&token={token}")
    wait_for(lambda: browser.execute_script("return window.opens === 1"))
    time.sleep(0.5)  # the first frame follows the headers that fired onopen
    gateway.kill()  # cut before any event
    with Publisher(redis_server.url) as producer:
        published = [producer.publish("e2e.c", "t", {"n": n}) for n in range(3)]
    gateway.start()
    wait_for(lambda: len(browser.execute_script("return window.received")) >= 3, timeout=30)
    time.sleep(1.0)  # nothing more may arrive: no duplicates
    got = browser.execute_script("return window.received")
    assert [row[1] for row in got] == published
    assert browser.execute_script("return window.opens") >= 2  # it did reconnect
