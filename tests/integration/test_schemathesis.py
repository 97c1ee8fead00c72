"""schemathesis against the live OpenAPI schema: no input may produce a 5xx, and every
error is problem+json. Streaming endpoints never end by themselves and are tested
elsewhere; a bounded number of examples per operation keeps this inside the budget."""

from __future__ import annotations

import re
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support.factories import TokenMaker
from tests.support.procs import Gateway

EXAMPLES = 40
STREAMING = re.compile(r"^/v1/(stream|feed|ws)$")


def test_no_input_makes_a_server_error(gateway: Gateway, make_token: TokenMaker) -> None:
    token = make_token(sub="fuzz", publish=["fuzz.>"], subscribe=["fuzz.>"])
    schema = schemathesis.openapi.from_url(gateway.url("/openapi.json"))
    checked: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if STREAMING.match(operation.path):
            continue
        checked.append(f"{operation.method.upper()} {operation.path}")

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(
                base_url=gateway.base_url, timeout=30, headers={"Authorization": f"Bearer {token}"}
            )
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, (where, response.text)
            if response.status_code >= 400:
                assert response.headers["content-type"] in (
                    ["application/problem+json"],
                    "application/problem+json",
                ), where
                body = response.json()
                assert body["status"] == response.status_code and body["detail"], where

        check()
    assert {"POST /v1/events", "GET /v1/events", "POST /v1/subscriptions"} <= set(checked)
    assert len(checked) >= 12, checked
