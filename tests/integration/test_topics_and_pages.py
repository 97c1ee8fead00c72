"""/v1/topics over real HTTP, and the packaged browser assets with their headers."""

from __future__ import annotations

import httpx

from tests.support.factories import TokenMaker
from tests.support.procs import Gateway

ORDERS = {"title": "Orders", "channel": "user.{user}.orders", "sinks": ["web", "email"]}
NEWS = {"title": "News", "description": "weekly", "channel": "news.>", "sinks": ["email"]}


def client(gw: Gateway, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=gw.base_url, headers={"authorization": f"Bearer {token}"}, trust_env=False
    )


def test_topics_admin_writes_users_read_what_they_may(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    with (
        client(gateway, make_token("root", admin=True)) as admin,
        client(gateway, make_token("bob")) as bob,
        client(gateway, make_token("carol", subscribe=["news.>"])) as carol,
    ):
        assert admin.put("/v1/topics/orders", json=ORDERS).status_code == 201
        assert admin.put("/v1/topics/news", json=NEWS).status_code == 201
        replaced = admin.put("/v1/topics/news", json={**NEWS, "title": "News!"})
        assert replaced.status_code == 200 and replaced.json()["title"] == "News!"

        denied = bob.put("/v1/topics/x", json=ORDERS)
        assert denied.status_code == 403
        assert denied.headers["content-type"] == "application/problem+json"
        assert bob.delete("/v1/topics/news").status_code == 403

        # bob reads his personal channel only; carol also reads news
        assert [(t["id"], t["channel"]) for t in bob.get("/v1/topics").json()["topics"]] == [
            ("orders", "user.bob.orders")
        ]
        assert [t["id"] for t in carol.get("/v1/topics").json()["topics"]] == ["news", "orders"]
        assert bob.get("/v1/topics/news").status_code == 404
        assert carol.get("/v1/topics/orders").json()["channel"] == "user.carol.orders"

        bad = admin.put("/v1/topics/orders", json={**ORDERS, "sinks": ["pager"]})
        assert bad.status_code == 422 and bad.json()["field"] == "sinks[0]"
        assert admin.put("/v1/topics/orders", content=b"{").status_code == 422
        assert admin.delete("/v1/topics/news").status_code == 204
        assert admin.delete("/v1/topics/news").status_code == 404
        assert [t["id"] for t in admin.get("/v1/topics").json()["topics"]] == ["orders"]
        assert httpx.get(gateway.url("/v1/topics"), trust_env=False).status_code == 401


def test_browser_assets_are_served_from_the_package(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.base_url, trust_env=False) as c:
        js = c.get("/notify.js")
        assert js.status_code == 200
        assert js.headers["content-type"] == "text/javascript; charset=utf-8"
        assert "max-age" in js.headers["cache-control"]
        assert js.headers["access-control-allow-origin"] == "*"
        assert "export class Notify" in js.text
        again = c.get("/notify.js", headers={"if-none-match": js.headers["etag"]})
        assert again.status_code == 304
        for path in ("/", "/preferences"):
            page = c.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"].startswith("text/html")
            csp = page.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert c.get("/static/..%2Fapp.py").status_code == 404
        assert c.get("/static/console.html").status_code == 404
        assert c.get("/static/nothing.js").status_code == 404


def test_docs_are_served_offline_with_a_bearer_scheme(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.base_url, trust_env=False) as c:
        page = c.get("/docs")
        assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "https://" not in page.text  # nothing from a CDN
        bundle = c.get("/docs/assets/swagger-ui-bundle.js")
        assert bundle.status_code == 200 and len(bundle.content) > 100_000
        assert bundle.headers["content-type"].startswith("text/javascript")
        assert c.get("/docs/assets/index.html").status_code == 404
        assert c.get("/static/docs.js").status_code == 200
        assert c.get("/redoc").status_code == 404
        schema = c.get("/openapi.json").json()
        assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert schema["security"] == [{"bearer": []}]
        assert "/v1/topics/{topic_id}" in schema["paths"]
