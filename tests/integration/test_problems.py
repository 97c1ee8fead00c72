"""Problem types resolve to pages served by the gateway; validation names every field."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from notify.errors import CATALOGUE
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import Gateway


def test_every_problem_type_resolves(gateway: Gateway, make_token: TokenMaker) -> None:
    reader = make_token("bob", subscribe=["news.>"])
    auth = {"Authorization": f"Bearer {reader}"}
    with httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=10) as c:
        answers = [
            c.post("/v1/events", json={}),  # 401
            c.post("/v1/events", json={"channel": "x", "type": "t", "data": 1}, headers=auth),
            c.post("/v1/events", content=b"{", headers=auth),  # 422
            c.get("/v1/events", params={"channel": "news.x", "after": "nope"}, headers=auth),
            c.get("/v1/subscriptions/sub_missing", headers=auth),  # 404
            c.put("/v1/events", headers=auth),  # 405
        ]
        statuses = {r.status_code for r in answers}
        assert statuses == {401, 403, 422, 400, 404, 405}, [r.text for r in answers]
        for r in answers:
            problem = r.json()
            page = c.get(urlsplit(problem["type"]).path)
            assert page.status_code == 200, problem
            assert page.headers["content-type"].startswith("text/html")
            assert page.headers["content-security-policy"] == "default-src 'none'"
            code = problem["type"].rsplit("/", 1)[1]
            assert f"<code>{code}</code>" in page.text
            assert problem["title"].lower() in page.text.lower()
        for code, entry in CATALOGUE.items():
            as_json = c.get(f"/problems/{code}", headers={"Accept": "application/json"}).json()
            assert as_json == {
                "code": code,
                "status": entry.status,
                "title": entry.title,
                "help": entry.help,
            }
        index = c.get("/problems")
        assert index.status_code == 200 and all(f"/problems/{k}" in index.text for k in CATALOGUE)
        missing = c.get("/problems/<script>")
        assert missing.status_code == 404 and "<script>" not in missing.headers["content-type"]
        assert missing.json()["type"].endswith("/problems/not-found")


def test_the_problem_base_is_configurable(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(NOTIFY_PROBLEM_BASE_URL="https://docs.example/errors")
    with httpx.Client(base_url=gw.base_url, trust_env=False, timeout=10) as c:
        assert c.post("/v1/events", json={}).json()["type"] == (
            "https://docs.example/errors/unauthenticated"
        )


def test_a_validation_failure_names_every_bad_field(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    auth = {"Authorization": f"Bearer {make_token(publish=['>'], subscribe=['>'])}"}
    with httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=10) as c:
        r = c.post("/v1/events", json={"channel": "a b", "type": "", "extra": 1}, headers=auth)
        body = r.json()
        assert r.status_code == 422 and body["field"] == "extra"
        assert [e["field"] for e in body["errors"]] == ["extra", "channel", "type", "data"]
        assert all(e["detail"] for e in body["errors"])
        batch = {
            "events": [
                {"channel": "ok", "type": "t", "data": 1},
                {"channel": "", "type": "t", "data": 1},
                {"channel": "ok", "type": "t t"},
            ]
        }
        body = c.post("/v1/events/batch", json=batch, headers=auth).json()
        assert body["field"] == "events[1].channel"
        assert [e["field"] for e in body["errors"]] == [
            "events[1].channel",
            "events[2].type",
            "events[2].data",
        ]
        r = c.post(
            "/v1/subscriptions",
            json={"channel": "a..b", "sink": {"kind": "email", "to": "not an address"}},
            headers=auth,
        )
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["errors"]] == ["channel", "sink.to"]
        assert c.get("/v1/events", params={"channel": ">"}, headers=auth).json()["events"] == []
