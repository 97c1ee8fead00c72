"""The cookie-authenticated write check: every method, origin source and content type."""

from __future__ import annotations

import pytest

from notify.csrf import check_cookie_write, is_json, origin_of
from notify.errors import CrossOrigin, UnsupportedMediaType

TRUSTED = ("https://app.example", "http://127.0.0.1:8000")
JSON = "application/json"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://App.Example", "https://app.example"),
        ("https://app.example:443/page?x=1", "https://app.example"),
        ("http://app.example:80", "http://app.example"),
        ("http://127.0.0.1:8000/x", "http://127.0.0.1:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("null", None),
        ("file:///etc/passwd", None),
        ("https://", None),
        ("http://x:99999", None),
        ("", None),
    ],
)
def test_origin_of(url: str, expected: str | None) -> None:
    assert origin_of(url) == expected


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/merge-patch+json", True),
        ("text/plain", False),
        ("text/plain;charset=UTF-8", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("text/json", False),
        ("application/jsonx", False),
        ("", False),
        (None, False),
    ],
)
def test_is_json(content_type: str | None, expected: bool) -> None:
    assert is_json(content_type) is expected


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "post"])
@pytest.mark.parametrize(
    ("origin", "referer", "content_type", "refused"),
    [
        ("https://app.example", None, JSON, None),
        ("https://app.example:443", None, "application/json; charset=utf-8", None),
        (None, "https://app.example/settings?tab=1", JSON, None),
        ("", "http://127.0.0.1:8000/", JSON, None),
        ("https://evil.example", None, JSON, CrossOrigin),
        ("https://evil.example", "https://app.example/", JSON, CrossOrigin),  # Origin wins
        ("null", "https://app.example/", JSON, CrossOrigin),
        ("http://app.example", None, JSON, CrossOrigin),  # another scheme, another origin
        (None, "https://evil.example/", JSON, CrossOrigin),
        (None, None, JSON, CrossOrigin),
        ("https://evil.example", None, "text/plain", CrossOrigin),  # the origin first
        ("https://app.example", None, "text/plain", UnsupportedMediaType),
        ("https://app.example", None, None, UnsupportedMediaType),
        ("https://app.example", None, "application/x-www-form-urlencoded", UnsupportedMediaType),
    ],
)
def test_writes(
    method: str,
    origin: str | None,
    referer: str | None,
    content_type: str | None,
    refused: type[Exception] | None,
) -> None:
    def check() -> None:
        check_cookie_write(
            method, origin=origin, referer=referer, content_type=content_type, trusted=TRUSTED
        )

    if refused is None:
        check()
    else:
        with pytest.raises(refused) as info:
            check()
        assert info.value.status in (403, 415)  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_reads_are_not_checked(method: str) -> None:
    check_cookie_write(
        method, origin="https://evil.example", referer=None, content_type=None, trusted=TRUSTED
    )


def test_a_wildcard_cors_list_trusts_no_one_with_the_cookie() -> None:
    with pytest.raises(CrossOrigin):
        check_cookie_write(
            "POST", origin="https://evil.example", referer=None, content_type=JSON, trusted=["*"]
        )
