"""HTTP request counts and latencies on /metrics, by route template, method and status:
fast paths and FastAPI routes alike, never a raw path."""

from __future__ import annotations

import re

import httpx

from tests.support.factories import TokenMaker
from tests.support.procs import Gateway


def series(text: str, name: str, **labels: str) -> float:
    """The value of one series (labels in any order), 0 when absent."""
    for line in text.splitlines():
        found = re.match(rf"^{name}{{(.*)}} (\S+)$", line)
        if found is None:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', found[1]))
        if have == labels:
            return float(found[2])
    return 0.0


def test_requests_are_counted_by_route_template_and_status(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    token = make_token(publish=[">"], subscribe=[">"])
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=gateway.base_url, headers=auth, trust_env=False) as c:
        for _ in range(3):
            assert (
                c.post("/v1/events", json={"channel": "m.1", "type": "t", "data": 1}).status_code
                == 202
            )
        assert c.post("/v1/events", json={"channel": "", "type": "t", "data": 1}).status_code == 422
        for n in range(2):  # two ids, one template
            assert c.get(f"/v1/deliveries/msg_nope{n}").status_code == 404
        assert c.get("/no/such/thing").status_code == 404
        with c.stream("GET", "/v1/stream", params={"channel": "m.>"}) as stream:
            assert stream.status_code == 200
        text = c.get("/metrics").text
    requests = "notify_http_requests_total"
    assert series(text, requests, method="POST", route="/v1/events", status="202") == 3
    assert series(text, requests, method="POST", route="/v1/events", status="422") == 1
    assert (
        series(text, requests, method="GET", route="/v1/deliveries/{delivery_id}", status="404")
        == 2
    )
    assert series(text, requests, method="GET", route="unmatched", status="404") == 1
    assert series(text, requests, method="GET", route="/v1/stream", status="200") == 1
    assert "msg_nope" not in text and "/no/such" not in text  # no raw paths as labels
    seconds = "notify_http_request_duration_seconds_count"
    assert series(text, seconds, method="POST", route="/v1/events") == 4
    assert series(text, seconds, method="GET", route="/v1/deliveries/{delivery_id}") == 2
