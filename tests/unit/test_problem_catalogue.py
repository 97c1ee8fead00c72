"""The problem catalogue covers every error code; validation names every bad field."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import orjson
import pytest

import notify.errors as errors
from notify.api.problems import from_error
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


def test_codes_are_spelled_one_way() -> None:
    """Lower-case words joined by ``-``: no ``not_ready`` beside ``not-found``."""
    assert [c for c in CATALOGUE if not re.fullmatch(r"[a-z]+(-[a-z]+)*", c)] == []


GATEWAY = Path(__file__).resolve().parents[2] / "api"


def spelled_out(source: str) -> list[str]:
    """String constants (docstrings aside) that are a problem code, or that hold one
    as a problem+json ``type`` ends (``/<code>``, ``<code>"``): a code the gateway
    builds itself instead of taking it from an error class of the catalogue."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    codes = set(CATALOGUE) | {c.replace("-", "_") for c in CATALOGUE}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in docstrings:
            continue
        value = node.value
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if isinstance(text, str) and (
            text in codes or any(f"/{c}" in text or f'{c}"' in text for c in codes)
        ):
            found.append(text)
    return found


def test_the_gateway_spells_out_no_problem_code() -> None:
    assert spelled_out('problem(503, "not_ready", "Not ready", "x")') == ["not_ready"]
    assert spelled_out("""b'{"type":"' + base + b'request_timeout","title":"T"}'""")
    files = sorted(GATEWAY.rglob("*.py"))
    assert len(files) > 10
    assert {p.name: spelled_out(p.read_text()) for p in files} == {p.name: [] for p in files}


@pytest.mark.parametrize(
    "error",
    [errors.ConfigError("NOTIFY_X", "bad"), errors.TransientDeliveryError("down")],
    ids=lambda e: type(e).__name__,
)
def test_an_error_outside_the_catalogue_is_answered_as_internal(error: NotifyError) -> None:
    response = from_error(error)
    body = orjson.loads(bytes(response.body))
    assert response.status_code == 500 and body["type"].endswith("/internal")
    assert body["detail"] == "an unexpected error occurred"  # nothing of the error leaks


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
