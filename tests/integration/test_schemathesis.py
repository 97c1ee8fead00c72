"""schemathesis against the live OpenAPI schema, with all its default checks: no 5xx,
every status code, content type, response header and body as documented, schema-valid
requests accepted and schema-invalid ones refused, authentication enforced where the
document asks for it; and every error is problem+json.

Each non-streaming operation gets a bounded number of positive and negative examples,
derandomized, so the run is repeatable and inside the budget. Excluded, each for a
reason written where it applies: the streaming endpoints (they never end by
themselves; tests/integration/test_stream.py and test_feed.py cover them), rules across
two inputs that OpenAPI cannot state, and one reported server bug.
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from tests.support.factories import TokenMaker
from tests.support.procs import Gateway

EXAMPLES = 25
STREAMING = re.compile(r"^/v1/(stream|feed|ws)$")


def cross_input_rule(case: Any) -> str | None:
    """The field a schema-valid request breaks a rule across two inputs with, which
    OpenAPI cannot state (the document says it in words, and the server answers 422
    naming that field); None for a request without such a break."""
    query = case.query or {}
    body = case.body if isinstance(case.body, dict) else {}
    # without a subscription, only the failures across them may be listed
    if (
        (case.method, case.path) == ("GET", "/v1/deliveries")
        and query.get("subscription") is None
        and query.get("status") != "failed"
    ):
        return "subscription"
    if case.method == "POST" and case.path == "/v1/subscriptions":
        given_twice = None not in (query.get("user"), body.get("user"))
        if given_twice and query["user"] != body["user"]:
            return "user"
    return None


def content_type(response: Any) -> str:
    value = response.headers.get("content-type", "")  # a list in schemathesis' Response
    return str(value[0] if isinstance(value, list) else value)


def assert_problem(response: Any, where: str) -> None:
    assert content_type(response) == "application/problem+json", where
    body = response.json()
    assert body["status"] == response.status_code and body["detail"], where


def test_the_server_answers_as_documented(gateway_factory: Any, make_token: TokenMaker) -> None:
    # every probe of the auth check comes from one address: the per-address limit on
    # failed sign-ins (429, documented) would otherwise answer them instead of the 401
    gateway: Gateway = gateway_factory(NOTIFY_AUTH_FAILURES_PER_MINUTE=1_000_000)
    token = make_token(sub="fuzz", publish=["fuzz.>"], subscribe=["fuzz.>"])
    auth = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_url(gateway.url("/openapi.json"))
    checked: list[str] = []
    exercised: dict[GenerationMode, list[str]] = {mode: [] for mode in GenerationMode}
    for result in schema.get_all_operations():
        operation = result.ok()
        if STREAMING.match(operation.path):
            continue
        name = f"{operation.method.upper()} {operation.path}"
        checked.append(name)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                where = f"{case.method} {case.formatted_path}"
                # What the request really carries, so that schemathesis judges that (it
                # revalidates a case whose parts are replaced): the caller's token, and
                # no query parameter the operation does not declare, which the server
                # ignores by design (a cache-buster must not break a stream) and which a
                # negative case would otherwise count as a refusal owed.
                if case.query:
                    declared = {parameter.name for parameter in case.operation.query}
                    case.query = {k: v for k, v in case.query.items() if k in declared}
                case.headers = {**(case.headers or {}), **auth}
                response = case.call(base_url=gateway.base_url, timeout=30)
                assert response.status_code < 500, (where, response.text)
                if response.status_code >= 400:
                    if content_type(response).startswith("text/html"):
                        # a page for a person's browser, as documented
                        assert case.path.startswith("/v1/unsubscribe/"), where
                    else:
                        assert_problem(response, where)
                field = None
                if case.meta.generation.mode.is_positive:
                    field = cross_input_rule(case)
                if field is None:
                    case.validate_response(response, headers=auth)
                    return
                if response.status_code == 422:
                    named = [e["field"] for e in response.json()["errors"]]
                    assert field in named, (where, response.text)
                case.validate_response(
                    response, headers=auth, excluded_checks=[positive_data_acceptance]
                )

            try:
                check()
            except Unsatisfiable:
                # an operation without an input that can be made invalid (GET /healthz,
                # a free-form path id) has no negative case; the others are asserted below
                assert mode is GenerationMode.NEGATIVE, name
                continue
            exercised[mode].append(name)
    for mode in GenerationMode:
        assert {"POST /v1/events", "GET /v1/events", "POST /v1/subscriptions"} <= set(
            exercised[mode]
        ), (mode, exercised[mode])
    assert {"GET /v1/deliveries", "PUT /v1/topics/{topic_id}"} <= set(
        exercised[GenerationMode.NEGATIVE]
    )
    assert len(checked) >= 20, checked
