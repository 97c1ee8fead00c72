"""The OpenAPI document's schemas agree with the validators behind them, and the
document lists every error each operation answers (api.schemas, api.routes.docs)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from hypothesis import given, settings
from hypothesis import strategies as st

from notify.api import schemas
from notify.api.app import create_app
from notify.api.routes.docs import ANSWERS
from notify.channels import validate_channel, validate_pattern
from notify.errors import InvalidInput
from notify.events import parse_id, validate_type
from notify.settings import Settings
from notify.subscriptions import (
    Address,
    TypePattern,
    Url,
    validate_address,
    validate_type_pattern,
    validate_url,
)

SEG = "a" * 64
TYPE_PATTERN = schemas.of(TypePattern)
URL = schemas.of(Url)
EMAIL = schemas.of(Address)


def accepted(check: Callable[[str], object], value: str) -> bool:
    try:
        check(value)
    except InvalidInput:
        return False
    return True


def schema_allows(schema: dict[str, Any], value: str) -> bool:
    return (
        schema["minLength"] <= len(value) <= schema["maxLength"]
        and re.fullmatch(schema["pattern"].strip("^$"), value) is not None
    )


CHANNELS = [
    "orders", "docs.42", "user.alice", "a@b:c_d-e", ".".join(["a"] * 16), ".".join(["a"] * 17),
    ".".join([SEG] * 3) + "." + "a" * 62, ".".join([SEG] * 4), "a" * 65, "", "a.", ".a", "a..b",
    "a b", "a/b", "a.*", "a.>", "*", ">", "a.>.b", "a.*.b", "é", "a\n",
]  # fmt: skip
TYPES = ["order.created", "a", "a" * 128, "a" * 129, "", "a b", "a@b", ":.-_", "é"]
TYPE_PATTERNS = ["order.*", "order.>", ">", "*", "a.>.b", "a..b", "", "a@b", "*.*", "a" * 129]
IDS = ["0-0", "1732683600000-0", "1-", "-1", "a-1", "1", "99999999999999999999-0", "1-1-1"]


@pytest.mark.parametrize(
    ("schema", "check", "examples"),
    [
        (schemas.CHANNEL, validate_channel, CHANNELS),
        (schemas.PATTERN, validate_pattern, CHANNELS),
        (schemas.EVENT_TYPE, validate_type, TYPES),
        (TYPE_PATTERN, lambda v: validate_type_pattern(v, "types[0]"), TYPE_PATTERNS),
        (schemas.EVENT_ID, parse_id, IDS),
    ],
)
def test_a_schema_allows_what_its_validator_accepts(
    schema: dict[str, Any], check: Callable[[str], object], examples: list[str]
) -> None:
    for value in examples:
        assert schema_allows(schema, value) == accepted(check, value), value


@pytest.mark.parametrize(
    ("schema", "check"),
    [
        (schemas.CHANNEL, validate_channel),
        (schemas.PATTERN, validate_pattern),
        (schemas.EVENT_TYPE, validate_type),
        (TYPE_PATTERN, lambda v: validate_type_pattern(v, "types[0]")),
        (schemas.EVENT_ID, parse_id),
        (URL, lambda v: validate_url(v, "sink.url", allow_private=False)),
        (EMAIL, lambda v: validate_address(v, "sink.to")),
    ],
)
def test_every_value_a_schema_allows_is_accepted(
    schema: dict[str, Any], check: Callable[[str], object]
) -> None:
    allowed = st.from_regex(schema["pattern"], fullmatch=True).filter(
        lambda v: len(v) <= schema["maxLength"]
    )

    @settings(max_examples=300, deadline=None)
    @given(allowed)
    def accepts(value: str) -> None:
        assert accepted(check, value), value

    accepts()


@pytest.mark.parametrize("name", SPECIAL_USE_DOMAIN_NAMES)
def test_the_email_schema_allows_no_special_use_domain(name: str) -> None:
    """Refused by the validator, whatever the rest of the address: what a random
    example may miss."""
    for address in (f"a@mail.{name}", f"a@mail.{name.upper()}"):
        assert not accepted(lambda v: validate_address(v, "sink.to"), address)
        assert not schema_allows(EMAIL, address), address


@pytest.mark.parametrize("address", ["a@example.info", "a@b.museum", "a@mail.TESTS", "a@x.io"])
def test_the_email_schema_allows_every_ordinary_top_level_domain(address: str) -> None:
    """Long top-level names are ordinary: a generated client must not refuse them."""
    assert accepted(lambda v: validate_address(v, "sink.to"), address)
    assert schema_allows(EMAIL, address), address


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings(jwt_secret="s" * 32)).openapi()


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def references(node: object) -> list[str]:
    """Every schema reference in ``node``: ``$ref`` and a discriminator's mapping."""
    if isinstance(node, list):
        return [ref for item in node for ref in references(item)]
    if not isinstance(node, dict):
        return []
    found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
    mapping = node.get("discriminator", {}).get("mapping", {})
    return found + list(mapping.values()) + references(list(node.values()))


def test_the_subscription_bodies_are_their_models_and_every_reference_resolves(
    document: dict[str, Any],
) -> None:
    bodies = {
        name: operation["requestBody"]["content"]["application/json"]["schema"]
        for name, operation in operations(document).items()
        if name in ("POST /v1/subscriptions", "PATCH /v1/subscriptions/{sub_id}")
    }
    assert bodies == {
        "POST /v1/subscriptions": {"$ref": "#/components/schemas/SubscriptionCreate"},
        "PATCH /v1/subscriptions/{sub_id}": {"$ref": "#/components/schemas/SubscriptionPatch"},
    }
    named = document["components"]["schemas"]
    refs = set(references(document))
    assert "#/components/schemas/WebhookSink" in refs
    for ref in refs:
        assert ref.removeprefix("#/components/schemas/") in named, ref


def test_every_operation_has_its_errors_listed(document: dict[str, Any]) -> None:
    assert set(operations(document)) == set(ANSWERS)


def test_errors_are_problems_and_fastapis_422_shape_is_gone(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in str(document)
    for name, operation in operations(document).items():
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                content = response["content"]
                assert "application/json" not in content, (name, status)
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }


def test_public_operations_need_no_token(document: dict[str, Any]) -> None:
    public = {n for n, o in operations(document).items() if o.get("security") == []}
    assert public == {
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /problems",
        "GET /problems/{code}",
        "GET /v1/unsubscribe/{token}",
        "POST /v1/unsubscribe/{token}",
    }
    assert document["security"] == [{"bearer": []}]
    for name, operation in operations(document).items():
        assert ("401" in operation["responses"]) == (name not in public), name
