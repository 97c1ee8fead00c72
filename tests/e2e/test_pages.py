"""The console and the preference page in a real Chromium, served by a real gateway."""

from __future__ import annotations

import time
from typing import Any

import httpx
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.alert import Alert
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select

from tests.e2e.conftest import Stack
from tests.e2e.test_notify_js import wait_for
from tests.support.webhook_receiver import Answer, Receiver

HOOK_ROW = '#sub-list [data-kind="webhook"]'
XSS = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def api(stack: Stack, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.gateway.base_url,
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
    )


def sign_in(stack: Stack, path: str, token: str) -> None:
    browser = stack.browser
    browser.get(stack.gateway.url(path))
    browser.execute_script("sessionStorage.clear()")
    browser.get(stack.gateway.url(path))
    field = wait_for(lambda: find(stack, "#token"), what="sign-in form")
    field.send_keys(token)
    find(stack, "#signin button").click()
    wait_for(lambda: not find(stack, "#signin"), what="signed in")


def click(stack: Stack, css: str) -> None:
    """Clicks ``css`` once it is there and clickable (pages re-render as data arrives)."""

    def attempt() -> bool:
        try:
            element = find(stack, css)
            if element is None:
                return False
            element.click()
            return True
        except WebDriverException:
            return False

    wait_for(attempt, what=f"click on {css}")


def text_of(stack: Stack, css: str) -> str:
    try:
        element = find(stack, css)
        return element.text if element is not None else ""
    except WebDriverException:
        return ""  # re-rendered meanwhile


def find(stack: Stack, css: str) -> WebElement | None:
    found = stack.browser.find_elements(By.CSS_SELECTOR, css)
    return found[0] if found else None


def state(stack: Stack) -> str:
    dot = find(stack, "#dot")
    return (dot.get_attribute("class") or "") if dot else ""


def subscriptions(client: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get("/v1/subscriptions").json()["subscriptions"]
    return found


def test_preferences_toggle_subscriptions_and_notify_in_the_browser(stack: Stack) -> None:
    bob_token = stack.token("bob")
    with (
        api(stack, stack.token("root", admin=True)) as admin,
        api(stack, bob_token) as bob,
    ):
        topic = {
            "title": "Your orders",
            "description": "Every change to an order of yours.",
            "channel": "user.{user}.orders",
            "sinks": ["web", "email"],
        }
        assert admin.put("/v1/topics/orders", json=topic).status_code in (200, 201)
        assert admin.put(
            "/v1/topics/staff", json={**topic, "title": "Staff only", "channel": "staff.>"}
        ).status_code in (200, 201)
        stack.browser.set_window_size(1280, 900)
        sign_in(stack, "/preferences", bob_token)
        wait_for(lambda: find(stack, '[data-topic="orders"] input[data-sink="web"]'), what="toggle")
        assert find(stack, '[data-topic="staff"]') is None  # bob may not read it
        assert stack.browser.execute_script("return Notification.permission") == "granted"
        stack.shot("preferences-empty")

        click(stack, '[data-topic="orders"] input[data-sink="web"]')
        wait_for(
            lambda: [s["channel"] for s in subscriptions(bob)] == ["user.bob.orders"],
            what="web subscription created",
        )
        wait_for(lambda: "open" in state(stack), what="feed open")
        time.sleep(0.3)
        r = admin.post(
            "/v1/events",
            json={
                "channel": "user.bob.orders",
                "type": "order.shipped",
                "data": {"order": 17, "note": XSS},
            },
        )
        assert r.status_code == 202
        recent = wait_for(lambda: find(stack, "#recent .event"), what="event shown")
        assert "order.shipped" in recent.text and "<img src=x" in recent.text
        # the system showed a notification for it (Chromium runs with them granted)
        wait_for(lambda: find(stack, "#recent [data-notified]"), what="system notification")
        assert stack.browser.execute_script("return window.pwned") is None
        stack.shot("preferences-on")

        # email needs an address first; then it is a toggle like the other
        address = find(stack, "#addr-email")
        assert address is not None
        address.send_keys("bob@example.com\t")
        click(stack, '[data-topic="orders"] input[data-sink="email"]')
        wait_for(lambda: len(subscriptions(bob)) == 2, what="email subscription created")
        sink = [s["sink"] for s in subscriptions(bob) if s["sink"]["kind"] == "email"]
        assert sink and sink[0]["to"] == "bob@example.com"

        click(stack, '[data-topic="orders"] input[data-sink="web"]')
        wait_for(
            lambda: [s["sink"]["kind"] for s in subscriptions(bob)] == ["email"],
            what="web subscription deleted",
        )
        admin.delete("/v1/topics/staff")


def test_console_signs_in_tails_publishes_and_escapes(stack: Stack) -> None:
    token = stack.token("root", admin=True)
    stack.browser.set_window_size(1280, 900)
    sign_in(stack, "/", token)
    pattern = wait_for(lambda: find(stack, "#tail-pattern"), what="tail form")
    pattern.clear()
    pattern.send_keys("console.>")
    click(stack, "#tail-start")
    wait_for(lambda: "open" in state(stack), what="tail open")
    time.sleep(0.3)
    with api(stack, token) as client:
        r = client.post(
            "/v1/events", json={"channel": "console.a", "type": "xss.try", "data": {"html": XSS}}
        )
        assert r.status_code == 202
    wait_for(
        lambda: len(stack.browser.find_elements(By.CSS_SELECTOR, "#tail-events .event")) == 1,
        what="tailed event",
    )
    shown = find(stack, "#tail-events")
    assert shown is not None and "<img src=x" in shown.text
    assert (
        stack.browser.find_elements(By.CSS_SELECTOR, "#tail-events img, #tail-events script") == []
    )
    assert stack.browser.execute_script("return window.pwned") is None

    click(stack, '[data-tab="publish"]')
    find(stack, "#pub-channel").send_keys("console.b")  # type: ignore[union-attr]
    find(stack, "#pub-type").send_keys("order.created")  # type: ignore[union-attr]
    find(stack, "#pub-data").send_keys('{"order": 17}')  # type: ignore[union-attr]
    stack.shot("console-publish")
    click(stack, "#pub-send")
    result = wait_for(lambda: find(stack, "#pub-result").text or None, what="published")  # type: ignore[union-attr]
    assert result.startswith("Published ")

    click(stack, '[data-tab="tail"]')
    wait_for(
        lambda: len(stack.browser.find_elements(By.CSS_SELECTOR, "#tail-events .event")) == 2,
        what="own publish tailed",
    )
    assert "order.created" in find(stack, "#tail-events .event").text  # type: ignore[union-attr]
    stack.shot("console-tail")

    click(stack, '[data-tab="subscriptions"]')
    find(stack, "#sub-channel").send_keys("console.>")  # type: ignore[union-attr]
    click(stack, "#sub-create")
    wait_for(lambda: "active" in text_of(stack, "#sub-list [data-sub]"), what="listed")
    assert "console.>" in text_of(stack, "#sub-list [data-sub]")
    click(stack, "#sub-list [data-sub] button")  # the first one pauses
    wait_for(
        lambda: "paused" in text_of(stack, "#sub-list [data-sub]"),
        what="paused",
    )
    stack.shot("console-subscriptions")

    click(stack, '[data-tab="figures"]')
    wait_for(
        lambda: len(stack.browser.find_elements(By.CSS_SELECTOR, "#figures .figure")) >= 3,
        what="figures",
    )
    stack.shot("console-figures")
    click(stack, '[data-tab="topics"]')
    wait_for(lambda: find(stack, "#topic-list li"), what="topics")
    stack.shot("console-topics")

    stack.browser.set_window_size(390, 844)  # a phone
    click(stack, '[data-tab="tail"]')
    stack.shot("console-phone")
    stack.browser.set_window_size(1280, 900)


def test_docs_render_offline_with_an_authorize_button(stack: Stack) -> None:
    stack.browser.set_window_size(1280, 900)
    stack.browser.get(stack.gateway.url("/docs"))
    wait_for(lambda: find(stack, ".swagger-ui .info .title"), what="Swagger UI rendered")
    wait_for(lambda: find(stack, ".swagger-ui button.authorize"), what="Authorize button")
    wait_for(lambda: find(stack, ".swagger-ui .opblock"), what="operations")
    loaded = stack.browser.execute_script(
        "return performance.getEntriesByType('resource').map((r) => r.name)"
    )
    assert loaded and all(url.startswith(stack.gateway.base_url) for url in loaded), loaded
    stack.shot("docs")


def test_console_webhook_delivery_failure_retry_and_replay(stack: Stack) -> None:
    receiver = Receiver().start()
    try:
        receiver.answer("/hook", default=Answer(status=500))
        stack.role("dispatcher")
        stack.role("worker", "--concurrency", "2")
        stack.browser.set_window_size(1280, 900)
        sign_in(stack, "/", stack.token("root", admin=True))
        click(stack, '[data-tab="subscriptions"]')
        find(stack, "#sub-channel").send_keys("hooks.>")  # type: ignore[union-attr]
        Select(find(stack, "#sub-kind")).select_by_value("webhook")
        find(stack, "#sub-url").send_keys(receiver.url("/hook"))  # type: ignore[union-attr]
        click(stack, "#sub-create")
        wait_for(lambda: "whsec_" in text_of(stack, "#sub-secret"), what="secret shown once")
        wait_for(lambda: find(stack, HOOK_ROW), what="listed")

        with api(stack, stack.token("root", admin=True)) as client:
            r = client.post("/v1/events", json={"channel": "hooks.a", "type": "t", "data": 1})
            assert r.status_code == 202
        receiver.wait("/hook", 1, timeout=60)  # a cold Celery worker on a busy machine

        click(stack, '[data-tab="deliveries"]')

        def failed_listed() -> bool:
            click(stack, "#deliveries-refresh")
            time.sleep(0.5)
            return "failed" in text_of(stack, '#delivery-list [data-status="failed"]')

        wait_for(failed_listed, timeout=30, what="failed delivery listed first")
        first = find(stack, "#delivery-list li")
        assert first is not None and first.get_attribute("data-status") == "failed"
        assert "attempts" in text_of(stack, "#delivery-list li")
        stack.shot("console-deliveries-failed")

        receiver.answer("/hook", default=Answer(status=200))
        before = len(receiver.at("/hook"))
        click(stack, '#delivery-list [data-status="failed"] button')
        receiver.wait("/hook", before + 1, timeout=20)

        def delivered_listed() -> bool:
            click(stack, "#deliveries-refresh")
            time.sleep(0.5)
            return bool(find(stack, '#delivery-list [data-status="delivered"]'))

        wait_for(delivered_listed, timeout=20, what="retried delivery delivered")
        stack.shot("console-deliveries-retried")

        # replay everything retained: the one event goes out again, with progress shown
        click(stack, '[data-tab="subscriptions"]')
        replay = wait_for(
            lambda: find(stack, HOOK_ROW + " button[data-action=replay]"), what="replay"
        )
        # counted before the replay is asked for: on a busy machine accept() can return
        # after the replayed request has already arrived
        after_retry = len(receiver.at("/hook"))
        replay.click()
        alert = wait_for(lambda: alert_of(stack), what="prompt")
        alert.send_keys("0-0")
        alert.accept()
        receiver.wait("/hook", after_retry + 1, timeout=20)
        wait_for(
            lambda: "1 of 1" in (find(stack, HOOK_ROW + " .progress").get_attribute("title") or ""),  # type: ignore[union-attr]
            what="replay progress complete",
        )
        stack.shot("console-replay")
    finally:
        receiver.stop()


def alert_of(stack: Stack) -> Alert | None:
    try:
        return stack.browser.switch_to.alert
    except WebDriverException:
        return None
