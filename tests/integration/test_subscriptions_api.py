"""/v1/subscriptions and /v1/deliveries over real HTTP: rights, validation, ownership."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from tests.integration.delivery_stack import Stack
from tests.support.factories import TokenMaker
from tests.support.procs import Gateway
from tests.support.webhook_receiver import Receiver

HOOK = {"kind": "webhook", "url": "https://hooks.example.com/in"}


def client(gw: Gateway, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=gw.base_url, headers={"authorization": f"Bearer {token}"}, trust_env=False
    )


@pytest.mark.parametrize("sink", [{"kind": "web"}, HOOK, {"kind": "email", "to": "a@example.com"}])
def test_subscribing_needs_read_rights_whatever_the_sink(
    gateway: Gateway, make_token: TokenMaker, sink: dict[str, Any]
) -> None:
    with client(gateway, make_token("bob", subscribe=["orders.*"])) as c:
        r = c.post("/v1/subscriptions", json={"channel": "orders.>", "sink": sink})
        assert r.status_code == 403, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert (
            c.post("/v1/subscriptions", json={"channel": "orders.eu", "sink": sink}).status_code
            == 201
        )
        personal = c.post("/v1/subscriptions", json={"channel": "user.bob.>", "sink": sink})
        assert personal.status_code == 201, personal.text
        other = c.post("/v1/subscriptions", json={"channel": "user.carol", "sink": sink})
        assert other.status_code == 403


def test_ownership_and_admin(gateway: Gateway, make_token: TokenMaker) -> None:
    with (
        client(gateway, make_token("bob", subscribe=["orders.>"])) as bob,
        client(gateway, make_token("carol", subscribe=["orders.>"])) as carol,
        client(gateway, make_token("root", admin=True)) as admin,
    ):
        sub = bob.post("/v1/subscriptions", json={"channel": "orders.>", "sink": HOOK}).json()
        assert carol.get(f"/v1/subscriptions/{sub['id']}").status_code == 404
        assert carol.delete(f"/v1/subscriptions/{sub['id']}").status_code == 404
        assert carol.get("/v1/deliveries", params={"subscription": sub["id"]}).status_code == 404
        assert carol.get("/v1/subscriptions", params={"user": "bob"}).status_code == 403
        listed = admin.get("/v1/subscriptions", params={"user": "bob"}).json()["subscriptions"]
        assert [s["id"] for s in listed] == [sub["id"]]
        made = admin.post(
            "/v1/subscriptions", json={"channel": "x.y", "sink": {"kind": "web"}, "user": "bob"}
        )
        assert made.status_code == 201 and made.json()["user"] == "bob"
        # the query parameter works as the field does (SPEC 3: "field or query parameter")
        web = {"channel": "x.z", "sink": {"kind": "web"}}
        by_query = admin.post("/v1/subscriptions", params={"user": "bob"}, json=web)
        assert by_query.status_code == 201 and by_query.json()["user"] == "bob"
        assert carol.post("/v1/subscriptions", params={"user": "bob"}, json=web).status_code == 403
        twice = admin.post(
            "/v1/subscriptions", params={"user": "carol"}, json={**web, "user": "bob"}
        )
        assert twice.status_code == 422 and twice.json()["field"] == "user"
        bad = admin.get("/v1/subscriptions", params={"user": "bad user"})
        assert bad.status_code == 422 and bad.json()["field"] == "user"
        assert len(bob.get("/v1/subscriptions").json()["subscriptions"]) == 3
        patched = bob.patch(f"/v1/subscriptions/{sub['id']}", json={"types": ["order.*"]})
        assert patched.status_code == 200 and patched.json()["types"] == ["order.*"]
        assert (
            bob.patch(f"/v1/subscriptions/{sub['id']}", json={"channel": "x.>"}).status_code == 403
        )
        assert bob.delete(f"/v1/subscriptions/{sub['id']}").status_code == 204
        assert bob.get(f"/v1/subscriptions/{sub['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "orders.>", "sink": {"kind": "pager"}}, "sink.kind"),
        (
            {"channel": "orders.>", "sink": {"kind": "webhook", "url": "ftp://x.example"}},
            "sink.url",
        ),
        ({"channel": "orders.>", "sink": {"kind": "webhook", "url": "not a url"}}, "sink.url"),
        ({"channel": "orders.>", "sink": {"kind": "webhook"}}, "sink.url"),
        (
            {"channel": "orders.>", "sink": {"kind": "webhook", "url": "https://u:p@x.example/"}},
            "sink.url",
        ),
        (
            {
                "channel": "orders.>",
                "sink": {"kind": "webhook", "url": "https://x.example/" + "a" * 3000},
            },
            "sink.url",
        ),
        (
            {"channel": "orders.>", "sink": {"kind": "webhook", "url": "http://127.0.0.1:9/"}},
            "sink.url",
        ),
        (
            {
                "channel": "orders.>",
                "sink": {"kind": "webhook", "url": "http://[::ffff:10.0.0.1]/"},
            },
            "sink.url",
        ),
        (
            {"channel": "orders.>", "sink": {"kind": "webhook", "url": "http://localhost/"}},
            "sink.url",
        ),
        ({"channel": "orders.>", "sink": {"kind": "email", "to": "not-an-address"}}, "sink.to"),
        (
            {
                "channel": "orders.>",
                "sink": {"kind": "email", "to": "a@example.com", "digest_seconds": -1},
            },
            "sink.digest_seconds",
        ),
        ({"channel": "orders.>", "sink": {"kind": "monitoring", "url": "gopher://am"}}, "sink.url"),
        ({"channel": "orders.>", "sink": {"kind": "web", "url": "x"}}, "sink.url"),
        ({"channel": "orders.>.x", "sink": {"kind": "web"}}, "channel"),
        ({"channel": "orders.>", "sink": {"kind": "web"}, "types": ["a b"]}, "types[0]"),
        ({"channel": "orders.>", "sink": {"kind": "web"}, "types": "order.*"}, "types"),
        ({"channel": "orders.>", "sink": {"kind": "web"}, "colour": 1}, "colour"),
        ({"sink": {"kind": "web"}}, "channel"),
        ({"channel": "orders.>"}, "sink"),
    ],
)
def test_bad_subscriptions_are_422_naming_the_field(
    gateway: Gateway, make_token: TokenMaker, body: dict[str, Any], field: str
) -> None:
    with client(gateway, make_token("bob", subscribe=["orders.>"])) as c:
        r = c.post("/v1/subscriptions", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field


def test_sink_kind_cannot_change(gateway: Gateway, make_token: TokenMaker) -> None:
    with client(gateway, make_token("bob", subscribe=["orders.>"])) as c:
        sub = c.post("/v1/subscriptions", json={"channel": "orders.>", "sink": HOOK}).json()
        r = c.patch(f"/v1/subscriptions/{sub['id']}", json={"sink": {"kind": "web"}})
        assert r.status_code == 422 and r.json()["field"] == "sink.kind"
        assert c.post(f"/v1/subscriptions/{sub['id']}/rotate-secret").status_code == 200
        web = c.post("/v1/subscriptions", json={"channel": "orders.>", "sink": {"kind": "web"}})
        assert c.post(f"/v1/subscriptions/{web.json()['id']}/rotate-secret").status_code == 409


def loopback_name() -> str | None:
    """A host name other than localhost that resolves only to loopback addresses: the
    machine's own name, or Debian's ip6-localhost / ip6-loopback from /etc/hosts."""
    for name in (socket.gethostname(), "ip6-localhost", "ip6-loopback"):
        try:
            infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
        except OSError:
            continue
        addresses = {i[4][0] for i in infos}
        if addresses and all(a.startswith("127.") or a == "::1" for a in addresses):
            return name
    return None


def test_ssrf_refused_on_the_address_connected_to(stack_factory: Any, receiver: Receiver) -> None:
    name = loopback_name()
    assert name is not None, (
        "this test needs a host name other than localhost that resolves to loopback "
        "(the machine's own name, or ip6-localhost in /etc/hosts)"
    )
    stack: Stack = stack_factory(NOTIFY_ALLOW_PRIVATE_TARGETS="0")
    url = f"http://{name}:{receiver.port}/ssrf"
    sub = stack.subscribe("orders.>", {"kind": "webhook", "url": url})
    stack.publish("orders.eu")
    [record] = stack.wait_status(sub["id"], "failed")
    assert "loopback" in record["attempts"][0]["error"]
    assert len(record["attempts"]) == 1  # refused targets are not retried
    assert receiver.at("/ssrf") == []


def test_deliveries_need_a_subscription_and_valid_cursor(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    with client(gateway, make_token("bob", subscribe=["orders.>"])) as c:
        assert c.get("/v1/deliveries").status_code == 422
        sub = c.post("/v1/subscriptions", json={"channel": "orders.>", "sink": HOOK}).json()
        for cursor in ("x", "²:x"):  # "²" passes str.isdigit but is no number
            r = c.get("/v1/deliveries", params={"subscription": sub["id"], "cursor": cursor})
            assert r.status_code == 422 and r.json()["field"] == "cursor"
        r = c.get("/v1/deliveries", params={"subscription": sub["id"], "status": "lost"})
        assert r.status_code == 422
        assert c.get("/v1/deliveries/msg_nope").status_code == 404
        assert c.post("/v1/deliveries/msg_nope/retry").status_code == 404


def test_changes_are_checked_against_the_callers_current_rights(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    """A token that can no longer read orders.> must not re-point, re-enable or
    re-key an orders.> webhook made while it could; it may still disable it."""
    with client(gateway, make_token("bob", subscribe=["orders.>"])) as before:
        sub = before.post("/v1/subscriptions", json={"channel": "orders.>", "sink": HOOK}).json()
    path = f"/v1/subscriptions/{sub['id']}"
    elsewhere = {"kind": "webhook", "url": "https://attacker.example.com/in"}
    with client(gateway, make_token("bob", subscribe=["news.>"])) as now:
        for change in ({"sink": elsewhere}, {"enabled": True}, {"types": ["t"]}):
            r = now.patch(path, json=change)
            assert r.status_code == 403, (change, r.text)
            assert r.headers["content-type"] == "application/problem+json"
        assert now.post(f"{path}/rotate-secret").status_code == 403
        assert now.get(path).json()["sink"]["url"] == HOOK["url"]  # nothing changed
        assert now.patch(path, json={"enabled": False}).status_code == 200
        assert now.delete(path).status_code == 204
