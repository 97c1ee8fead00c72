"""Browser fixture for end-to-end tests: headless Chromium driven by Selenium.

The system's chromium and chromedriver are used (installed with apt-get when missing);
Selenium is never allowed to download a browser or a driver.
"""

from __future__ import annotations

import functools
import http.server
import secrets
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from notify.auth import mint
from tests.integration.delivery_stack import FAST_ENV
from tests.support.ports import free_port
from tests.support.procs import Gateway, Proc
from tests.support.redis import RedisServer
from tests.support.system import ensure_binary

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


def launch(directory: Path, *extra: str, notifications: bool = False) -> webdriver.Chrome:
    """A headless Chromium with its own profile in ``directory``; the caller quits it.
    ``notifications`` grants every page the Notification permission."""
    binary = ensure_binary("chromium", "chromium", CHROMIUM)
    driver_path = ensure_binary("chromedriver", "chromium-driver", CHROMEDRIVER)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROME_FLAGS, *extra):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={directory / 'chromium-profile'}")
    if notifications:
        options.add_experimental_option(
            "prefs", {"profile.default_content_setting_values.notifications": 1}
        )
    service = Service(executable_path=driver_path, log_output=str(directory / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium with its own profile directory; quit at teardown."""
    driver = launch(tmp_path)
    try:
        yield driver
    finally:
        driver.quit()


CLIENT_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>notify.js test page</title></head>
<body><pre id="log"></pre><script type="module">
const gateway = new URLSearchParams(location.search).get("gateway");
window.lib = import(gateway + "/notify.js").then((m) => (window.N = m));
</script></body></html>
"""


@dataclass
class Stack:
    """One Redis, one gateway, one browser and a page server on another origin, shared
    by the tests of a module (starting Chromium and a gateway is most of their time)."""

    redis: RedisServer
    gateway: Gateway
    secret: str
    pages: str
    browser: webdriver.Chrome
    procs: list[Proc] = field(default_factory=list)

    def token(
        self,
        sub: str = "alice",
        publish: Iterable[str] = (),
        subscribe: Iterable[str] = (),
        admin: bool = False,
        ttl: float | None = None,
    ) -> str:
        return mint(self.secret, sub, publish=publish, subscribe=subscribe, admin=admin, ttl=ttl)

    def client_page(self) -> str:
        return f"{self.pages}/client.html?gateway={self.gateway.base_url}"

    def role(self, *args: str) -> Proc:
        """A dispatcher or worker on this stack's Redis, killed with the stack."""
        proc = Proc(
            args,
            directory=self.gateway.directory,
            env={"NOTIFY_REDIS_URL": self.redis.url, "NOTIFY_JWT_SECRET": self.secret, **FAST_ENV},
            name=args[0],
        )
        self.procs.append(proc)
        return proc.start()

    def shot(self, name: str) -> Path:
        """A screenshot of the current page, kept (git-ignored) for a human to look at."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.browser.save_screenshot(str(path))
        return path


ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The module's stack; a module's ``GATEWAY_ENV`` (a dict) adds to its gateway's
    environment from the first start (``NOTIFY_SHARDS`` can only be set on an empty store)."""
    root = tmp_path_factory.mktemp("stack")
    (root / "pages").mkdir()
    (root / "pages" / "client.html").write_text(CLIENT_PAGE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root / "pages"))
    pages = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    pages_url = f"http://127.0.0.1:{pages.server_address[1]}"
    secret = secrets.token_urlsafe(32)
    redis = RedisServer(root / "redis").start()
    gateway = Gateway(
        redis_url=redis.url,
        jwt_secret=secret,
        directory=root / "gateway",
        env={
            "NOTIFY_CORS_ORIGINS": pages_url,
            **FAST_ENV,
            **getattr(request.module, "GATEWAY_ENV", {}),
        },
    )
    driver = None
    stack: Stack | None = None
    try:
        gateway.start()
        # the network is loopback only: any asset fetched from elsewhere fails to load
        driver = launch(
            root, "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", notifications=True
        )
        stack = Stack(redis, gateway, secret, pages_url, driver)
        yield stack
    finally:
        for proc in stack.procs if stack is not None else ():
            proc.kill()
        if driver is not None:
            driver.quit()
        gateway.kill()
        redis.kill()
        pages.shutdown()
        pages.server_close()
