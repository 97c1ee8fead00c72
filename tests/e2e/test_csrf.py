"""Cross-site request forgery in a real browser: a page on a foreign site holds no token,
but the browser attaches the user's ``notify_token`` cookie (``SameSite=None; Secure``) to
its form post and its ``no-cors`` fetch. Nothing may be published.

Chromium treats loopback as a secure context, so the Secure cookie travels to the
gateway over plain http://127.0.0.1; the pages are served from http://localhost on
other ports: another site (SameSite) and other origins (CORS). The browser is told to
allow third-party cookies (as an embedding app's users would have to), and a control
shows the cookie does reach the gateway cross-site."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.e2e.conftest import CHROME_FLAGS, CHROMEDRIVER, CHROMIUM
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.ports import free_port
from tests.support.system import ensure_binary

FORGE = """<!doctype html>
<html><body>
<form id="form" method="POST" enctype="text/plain" action="{gateway}/v1/events">
<input type="hidden" name='{{"channel":"csrf.form","type":"t","data":"' value='"}}'>
</form>
<script>
window.sent = 0;
const opts = {{method: "POST", mode: "no-cors", credentials: "include"}};
Promise.allSettled([
  fetch("{gateway}/v1/events",
        {{...opts, body: '{{"channel":"csrf.fetch","type":"t","data":1}}'}}),
  fetch("{gateway}/v1/events",  // a Blob without a type: no Content-Type header at all
        {{...opts, body: new Blob(['{{"channel":"csrf.blob","type":"t","data":1}}'])}}),
  fetch("{gateway}/v1/events/batch", {{...opts,
        body: '{{"events":[{{"channel":"csrf.batch","type":"t","data":1}}]}}'}}),
  fetch("{gateway}/v1/subscriptions", {{...opts,
        body: '{{"channel":"csrf.>","sink":{{"kind":"web"}}}}'}}),
]).then(() => {{ window.sent = 4; }});
</script></body></html>
"""

ALLOWED = """<!doctype html>
<html><body><script>
window.answer = null;
fetch("{gateway}/v1/events", {{
  method: "POST", credentials: "include", headers: {{"Content-Type": "application/json"}},
  body: '{{"channel":"csrf.allowed","type":"t","data":1}}',
}}).then((r) => {{ window.answer = r.status; }}, (e) => {{ window.answer = String(e); }});
</script></body></html>
"""


def serve_directory(directory: Path) -> tuple[str, Callable[[], None]]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://localhost:{server.server_address[1]}", stop


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[tuple[Path, str, Path, str]]:
    """Two page servers on http://localhost: a foreign site and the allowed app."""
    (tmp_path / "evil").mkdir()
    (tmp_path / "app").mkdir()
    evil, stop_evil = serve_directory(tmp_path / "evil")
    app, stop_app = serve_directory(tmp_path / "app")
    try:
        yield tmp_path / "evil", evil, tmp_path / "app", app
    finally:
        stop_evil()
        stop_app()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium that sends third-party cookies (its default blocks them)."""
    options = webdriver.ChromeOptions()
    options.binary_location = ensure_binary("chromium", "chromium", CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_experimental_option(
        "prefs", {"profile.cookie_controls_mode": 0, "profile.block_third_party_cookies": False}
    )
    driver_path = ensure_binary("chromedriver", "chromium-driver", CHROMEDRIVER)
    service = Service(executable_path=driver_path, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout} s")


def test_a_foreign_page_cannot_write_with_the_cookie(
    browser: webdriver.Chrome,
    sites: tuple[Path, str, Path, str],
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
) -> None:
    evil_dir, evil, app_dir, app = sites
    gateway = gateway_factory(NOTIFY_CORS_ORIGINS=app)
    token = make_token("alice", publish=[">"], subscribe=[">"])
    browser.execute_cdp_cmd(
        "Network.setCookie",
        {
            "name": "notify_token",
            "value": token,
            "url": gateway.base_url,
            "secure": True,
            "httpOnly": True,
            "sameSite": "None",
        },
    )
    (evil_dir / "index.html").write_text(FORGE.format(gateway=gateway.base_url))
    (app_dir / "index.html").write_text(ALLOWED.format(gateway=gateway.base_url))

    # control: the cookie does travel cross-site from the allowed app, and publishes
    browser.get(f"{app}/index.html")
    assert wait_for(lambda: browser.execute_script("return window.answer")) == 202

    browser.get(f"{evil}/index.html")
    wait_for(lambda: browser.execute_script("return window.sent") == 4)
    browser.find_element(By.ID, "form").submit()  # navigates to the gateway's answer
    wait_for(lambda: browser.current_url.startswith(gateway.base_url))
    answer = json.loads(wait_for(lambda: browser.find_element(By.TAG_NAME, "body").text))
    # 403, not 401: the browser sent the cookie, and the gateway refused the forgery
    assert answer["status"] == 403 and answer["type"].endswith("/cross-origin"), answer

    with httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=10) as c:
        auth = {"Authorization": f"Bearer {token}"}
        events = c.get("/v1/events", params={"channel": ">"}, headers=auth).json()["events"]
        subscriptions = c.get("/v1/subscriptions", headers=auth).json()
    assert [e["channel"] for e in events] == ["csrf.allowed"]
    assert subscriptions == [] or subscriptions.get("subscriptions") == [], subscriptions
