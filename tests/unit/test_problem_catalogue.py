"""The problem catalogue covers every error code; validation names every bad field."""

from __future__ import annotations

import pytest

import notify.errors as errors
from notify.errors import CATALOGUE, Findings, InvalidEvent, InvalidInput, NotifyError
from notify.events import draft
from notify.subscriptions import parse_create, parse_patch


def _subclasses(cls: type[NotifyError]) -> list[type[NotifyError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out += _subclasses(sub)
    return out


API_ERRORS = [
    c
    for c in _subclasses(NotifyError)
    if c.__module__ == "notify.errors"
    and not issubclass(c, errors.DeliveryError | errors.ConfigError)
]


@pytest.mark.parametrize("error", API_ERRORS, ids=lambda c: c.__name__)
def test_every_api_error_has_a_page(error: type[NotifyError]) -> None:
    entry = CATALOGUE[error.code]
    assert entry.status == error.status or error is errors.Unauthenticated
    assert entry.title == error.title and len(entry.help) > 20


def test_codes_are_url_safe() -> None:
    assert all(code.replace("-", "").replace("_", "").isalnum() for code in CATALOGUE)


def test_an_event_with_several_bad_fields_names_them_all() -> None:
    with pytest.raises(InvalidEvent) as info:
        draft({"channel": "bad channel", "type": "bad type!", "x": 1}, max_bytes=65536)
    exc = info.value
    assert exc.field == "x"  # the first, as before
    assert [e.field for e in exc.each()] == ["x", "channel", "type", "data"]


def test_one_bad_field_is_its_own_list() -> None:
    with pytest.raises(InvalidInput) as info:
        draft({"channel": "ok", "type": "t"}, max_bytes=65536)
    assert [(e.field, e.detail) for e in info.value.each()] == [
        ("data", "data is required (it may be null)")
    ]


def test_a_subscription_names_every_bad_field() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_create(
            {"channel": "a..b", "types": "x", "sink": {"kind": "fax"}, "user": 3, "z": 1},
            allow_private=False,
        )
    assert [e.field for e in info.value.each()] == ["z", "channel", "types", "sink.kind", "user"]
    with pytest.raises(InvalidInput) as info:
        parse_patch({"channel": "", "enabled": "yes"}, allow_private=False)
    assert [e.field for e in info.value.each()] == ["enabled", "channel"]


def test_findings_pass_good_values_through() -> None:
    found = Findings()
    assert found.attempt(int, "7") == 7
    found.raise_any()  # nothing found: no error
