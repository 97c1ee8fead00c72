"""Subscription validation (fields named in errors), storage form and secret rotation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from notify import alerts
from notify.errors import InvalidInput
from notify.sinks.http import parse_origin
from notify.subscriptions import (
    Secret,
    Subscription,
    parse_create,
    parse_patch,
    validate_address,
    validate_url,
)

WEB = {"kind": "web"}


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        (WEB, WEB),
        (
            {"kind": "email", "to": "A@Example.com"},
            {"kind": "email", "to": "A@example.com", "digest_seconds": 0},
        ),
        (
            {"kind": "email", "to": "a@example.com", "digest_seconds": 60},
            {"kind": "email", "to": "a@example.com", "digest_seconds": 60},
        ),
        (  # an integer to JSON Schema, stored as one
            {"kind": "email", "to": "a@example.com", "digest_seconds": 60.0},
            {"kind": "email", "to": "a@example.com", "digest_seconds": 60},
        ),
        (
            {"kind": "webhook", "url": "https://h.example.com/x?y=1"},
            {"kind": "webhook", "url": "https://h.example.com/x?y=1"},
        ),
        (
            {"kind": "monitoring", "url": "http://alertmanager:9093"},
            {"kind": "monitoring", "url": "http://alertmanager:9093"},
        ),
    ],
)
def test_valid_sinks(sink: dict[str, Any], expected: dict[str, Any]) -> None:
    draft = parse_create({"channel": "a.>", "sink": sink}, allow_private=False)
    assert draft.sink == expected


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"channel": "a", "sink": {"kind": "sms"}}, "sink.kind"),
        ({"channel": "a", "sink": {}}, "sink.kind"),
        ({"channel": "a", "sink": "web"}, "sink"),
        ({"channel": "a", "sink": {"kind": "web", "extra": 1}}, "sink.extra"),
        ({"channel": "a", "sink": {"kind": "email", "to": "nobody"}}, "sink.to"),
        (
            {"channel": "a", "sink": {"kind": "email", "to": "a@b.c", "digest_seconds": True}},
            "sink.digest_seconds",
        ),
        (
            {"channel": "a", "sink": {"kind": "email", "to": "a@b.c", "digest_seconds": 86401}},
            "sink.digest_seconds",
        ),
        ({"channel": "a", "sink": {"kind": "webhook", "url": "javascript:alert(1)"}}, "sink.url"),
        (
            {"channel": "a", "sink": {"kind": "webhook", "url": "https://x.example/#frag"}},
            "sink.url",
        ),
        ({"channel": "a", "sink": {"kind": "webhook", "url": "https://x.example:0/"}}, "sink.url"),
        (
            {"channel": "a", "sink": {"kind": "webhook", "url": "https://x.example:99999/"}},
            "sink.url",
        ),
        ({"channel": "a", "sink": {"kind": "webhook", "url": "http://[fe80::1]/"}}, "sink.url"),
        ({"channel": "a", "sink": {"kind": "webhook", "url": "http://api.localhost/"}}, "sink.url"),
        ({"channel": "a", "sink": {"kind": "webhook", "url": "http://localhost./"}}, "sink.url"),
        ({"channel": "a", "sink": {"kind": "webhook", "url": "https://x.example/a b"}}, "sink.url"),
        ({"channel": "a", "sink": {"kind": "webhook", "url": 7}}, "sink.url"),
        ({"channel": "a..b", "sink": WEB}, "channel"),
        ({"channel": ">.a", "sink": WEB}, "channel"),
        ({"channel": "a", "sink": WEB, "types": ["ok", ">.x"]}, "types[1]"),
        ({"channel": "a", "sink": WEB, "types": ["x" * 129]}, "types[0]"),
        ({"channel": "a", "sink": WEB, "types": ["t"] * 33}, "types"),
        ({"channel": "a", "sink": WEB, "user": 5}, "user"),
    ],
)
def test_invalid_creation_names_the_field(body: Any, field: str | None) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_create(body, allow_private=False)
    assert info.value.field == field


def test_private_targets_allowed_when_configured() -> None:
    url = "http://127.0.0.1:8080/hook"
    assert validate_url(url, "sink.url", allow_private=True) == url
    with pytest.raises(InvalidInput):
        validate_url(url, "sink.url", allow_private=False)


def test_types_are_deduplicated_in_order() -> None:
    draft = parse_create(
        {"channel": "a", "sink": WEB, "types": ["b.*", "a", "b.*"]}, allow_private=False
    )
    assert draft.types == ("b.*", "a")


def test_patch() -> None:
    patch = parse_patch({"enabled": False, "types": None}, allow_private=False)
    assert patch.enabled is False and patch.types == () and patch.channel is None
    with pytest.raises(InvalidInput) as info:
        parse_patch({"enabled": "no"}, allow_private=False)
    assert info.value.field == "enabled"
    with pytest.raises(InvalidInput) as info:
        parse_patch({"id": "x"}, allow_private=False)
    assert info.value.field == "id"


def make(secrets: tuple[Secret, ...] = (Secret("whsec_AAAA"),)) -> Subscription:
    return Subscription(
        id="sub_x",
        user="alice",
        channel="a.>",
        types=("t.*",),
        sink={"kind": "webhook", "url": "https://x.example/"},
        since_ms=5,
        created_at="c",
        updated_at="u",
        secrets=secrets,
    )


def test_storage_round_trip_keeps_secrets_but_the_view_does_not() -> None:
    sub = make()
    assert Subscription.loads(sub.dumps()) == sub
    assert "secret" not in str(sub.public())


def test_rotation_keeps_the_old_secret_for_a_day() -> None:
    now = 1000.0
    rotated = make().rotated("whsec_BBBB", now)
    assert rotated.signing_secrets(now) == ["whsec_BBBB", "whsec_AAAA"]
    # a day (README), by literal: the old secret signs until the last second of it
    assert rotated.signing_secrets(now + 86399) == ["whsec_BBBB", "whsec_AAAA"]
    later = now + 86400
    assert rotated.signing_secrets(later) == ["whsec_BBBB"]
    again = rotated.rotated("whsec_CCCC", later + 1)
    assert [s.value for s in again.secrets] == ["whsec_CCCC", "whsec_BBBB"]


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("ops@example.com", "ops@example.com"),
        ("Ops@Example.COM", "Ops@example.com"),
        ("ops@exämple.com", "ops@xn--exmple-cua.com"),  # IDNA: what SMTP can carry
    ],
)
def test_an_address_is_stored_as_smtp_can_carry_it(raw: str, stored: str) -> None:
    assert validate_address(raw, "sink.to") == stored


def test_an_address_smtp_cannot_carry_without_smtputf8_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_address("üser@example.com", "sink.to")
    assert info.value.field == "sink.to" and "before the @-sign" in info.value.detail


@pytest.mark.parametrize(
    "url",
    [
        "http://am:9093",
        "http://xn--:9093",  # an A-label without Punycode: httpx refuses it
        "http://xn--zz-:9093",
        "http://[v1.x]:80",  # an IPvFuture literal: urlsplit takes it, httpx does not
        "http://[fe80::1]:9093",
        "http://am:9093/path?x=1",
        "https://b\u00fccher.example/alerts",
        "http://a..b:9093",
        "http://" + "a" * 64 + ".example",
    ],
)
def test_an_accepted_url_is_one_the_client_can_request(url: str) -> None:
    """Accepted URLs must be requestable as the sinks will request them (httpx)."""
    try:
        validate_url(url, "sink.url", allow_private=True)
    except InvalidInput:
        return
    with httpx.Client(trust_env=False) as client:
        client.build_request("POST", alerts.endpoint(url))
        client.build_request("POST", url)
    parse_origin(alerts.endpoint(url))  # the sinks' own client
    parse_origin(url)


HOOK = {"kind": "webhook", "url": "https://h.example.com/x"}


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        ({**HOOK, "format": "standard"}, HOOK),
        ({**HOOK, "format": "slack"}, {**HOOK, "format": "slack"}),
        ({**HOOK, "format": "cloudevents"}, {**HOOK, "format": "cloudevents"}),
        (
            {**HOOK, "format": "template", "template": "{{ event.type }}"},
            {**HOOK, "format": "template", "template": "{{ event.type }}"},
        ),
        (
            {**HOOK, "format": "teams", "template": "{{ event.type }}"},
            {**HOOK, "format": "teams", "template": "{{ event.type }}"},
        ),
        (
            {"kind": "email", "to": "a@example.com", "template": {"subject": "{{ event.type }}"}},
            {
                "kind": "email",
                "to": "a@example.com",
                "digest_seconds": 0,
                "template": {"subject": "{{ event.type }}"},
            },
        ),
    ],
)
def test_formats_and_templates(sink: dict[str, Any], expected: dict[str, Any]) -> None:
    draft = parse_create({"channel": "a.>", "sink": sink}, allow_private=False)
    assert draft.sink == expected


@pytest.mark.parametrize(
    ("sink", "field", "detail"),
    [
        ({**HOOK, "format": "sms"}, "sink.format", "format must be one of"),
        ({**HOOK, "format": "template"}, "sink.template", "needs a template"),
        ({**HOOK, "template": "x"}, "sink.template", "used by the formats"),
        ({**HOOK, "format": "template", "template": ""}, "sink.template", "non-empty string"),
        ({**HOOK, "format": "template", "template": "a\n{{ x( }}"}, "sink.template", "line 2:"),
        ({**HOOK, "format": "slack", "template": "{{ ''.__class__ }}"}, "sink.template", "line 1"),
        ({"kind": "monitoring", "url": "http://a:1", "format": "slack"}, "sink.format", "unknown"),
        (
            {"kind": "email", "to": "a@b.co", "template": {"html": "{% include 'x' %}"}},
            "sink.template.html",
            "include",
        ),
        ({"kind": "email", "to": "a@b.co", "template": {"body": "x"}}, "sink.template.body", ""),
        ({"kind": "email", "to": "a@b.co", "template": {}}, "sink.template", "at least one"),
        ({"kind": "email", "to": "a@b.co", "template": "x"}, "sink.template", "JSON object"),
    ],
)
def test_bad_formats_and_templates(sink: dict[str, Any], field: str, detail: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_create({"channel": "a", "sink": sink}, allow_private=False)
    assert caught.value.field == field
    assert detail in caught.value.detail
