from __future__ import annotations

import pytest

from notify.csrf import check_cookie_write
from notify.errors import CrossOrigin
from notify.origins import cors_allows, is_loopback, origin_allowed


@pytest.mark.parametrize(
    ("origin", "allowed", "host", "secure", "expected"),
    [
        (None, [], "gw:8000", False, True),  # not a browser
        ("http://gw:8000", [], "gw:8000", False, True),  # same origin
        ("http://GW:8000", [], "gw:8000", False, True),
        ("https://gw", [], "gw:443", True, True),
        ("http://gw", [], "gw:80", False, True),
        ("https://gw:8000", [], "gw:8000", False, False),  # other scheme
        ("http://gw:8001", [], "gw:8000", False, False),  # other port
        ("http://evil.example", [], "gw:8000", False, False),  # the reported hole
        ("null", [], "gw:8000", False, False),
        ("http://gw:8000", [], None, False, False),
        ("http://gw:notaport", [], "gw:notaport", False, False),
        ("http://app.example", ["http://app.example"], "gw:8000", False, True),
        ("http://evil.example", ["http://app.example"], "gw:8000", False, False),
        ("http://evil.example", ["*"], "gw:8000", False, True),
        ("http://notify.example", [], "10.0.0.5:8000", False, True),  # the public URL
    ],
)
def test_origin_allowed(
    origin: str | None, allowed: list[str], host: str | None, secure: bool, expected: bool
) -> None:
    assert origin_allowed(origin, allowed, host, secure, "http://notify.example") is expected


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("http://localhost:5173", True),
        ("http://localhost", True),
        ("https://localhost:8443", True),
        ("HTTP://LocalHost:3000", True),  # scheme and host are case-insensitive
        ("http://127.0.0.1:5173", True),
        ("http://127.0.0.2:1", True),  # all of 127.0.0.0/8
        ("http://127.255.255.254:65535", True),
        ("http://[::1]:8080", True),
        ("http://[::1]", True),
        ("http://localhost.evil.com", False),  # resolves wherever its owner wants
        ("http://localhost.evil.com:5173", False),
        ("http://127.0.0.1.nip.io", False),
        ("http://evil.com#@localhost", False),
        ("http://localhost@evil.com", False),
        ("http://evil.com/?localhost", False),
        ("null", False),  # sandboxed frames, file pages, some redirects
        ("file://", False),
        ("file:///home/me/page.html", False),
        ("ws://localhost:5173", False),  # not a page's origin
        ("http://localhost:5173/", False),  # an Origin has no path
        ("http://localhost:5173/app", False),
        ("http://localhost:65536", False),
        ("http://localhost:", False),
        ("http://128.0.0.1", False),
        ("http://126.255.255.255", False),
        ("http://0.0.0.0:8000", False),
        ("http://10.0.0.5:8000", False),
        ("http://127.1", False),  # browsers write 127.0.0.1; nothing else is parsed
        ("http://127.0.0.01", False),
        ("http://127.0.0.256", False),
        ("http://[::2]", False),
        ("http://[::ffff:127.0.0.1]", False),
        ("http://[::1%25lo]:80", False),
        ("http://::1", False),
        (" http://localhost", False),
        ("http://localhost\n", False),
        ("", False),
    ],
)
def test_is_loopback(origin: str, expected: bool) -> None:
    assert is_loopback(origin) is expected


LOCAL = "http://127.0.0.1:5173"


@pytest.mark.parametrize(
    ("origin", "allowed", "loopback", "expected"),
    [
        (LOCAL, [], True, True),
        (LOCAL, [], False, False),
        (LOCAL, ["https://app.example"], False, False),
        ("http://localhost.evil.com", [], True, False),
        ("null", [], True, False),
        ("https://app.example", ["https://app.example"], True, True),
        ("https://evil.example", ["https://app.example"], True, False),
        ("https://evil.example", ["*"], False, True),
    ],
)
def test_cors_allows(origin: str, allowed: list[str], loopback: bool, expected: bool) -> None:
    assert cors_allows(origin, allowed, loopback) is expected


@pytest.mark.parametrize(
    ("origin", "loopback", "expected"),
    [
        (LOCAL, True, True),
        (LOCAL, False, False),  # another port than the gateway's own
        ("http://[::1]:8080", True, True),
        ("http://localhost.evil.com", True, False),
        ("http://127.0.0.1:8000", False, True),  # the gateway's own, flag or not
    ],
)
def test_origin_allowed_with_loopback(origin: str, loopback: bool, expected: bool) -> None:
    allowed = origin_allowed(origin, [], "127.0.0.1:8000", False, "http://notify.example", loopback)
    assert allowed is expected


@pytest.mark.parametrize(
    ("origin", "referer", "loopback", "refused"),
    [
        (LOCAL, None, True, False),
        (None, LOCAL + "/page", True, False),
        ("http://localhost:3000", None, True, False),
        ("http://localhost:80", None, True, False),  # the default port, written out
        (LOCAL, None, False, True),
        ("http://localhost.evil.com", None, True, True),
        ("http://127.0.0.1.nip.io", None, True, True),
        ("null", LOCAL + "/page", True, True),  # Origin wins over Referer
        ("https://evil.example", None, True, True),
        (None, None, True, True),
    ],
)
def test_the_cookie_check_trusts_loopback_only_with_the_flag(
    origin: str | None, referer: str | None, loopback: bool, refused: bool
) -> None:
    def check() -> None:
        check_cookie_write(
            "POST",
            origin=origin,
            referer=referer,
            content_type="application/json",
            trusted=["https://app.example", "http://127.0.0.1:8000"],
            loopback=loopback,
        )

    if refused:
        with pytest.raises(CrossOrigin):
            check()
    else:
        check()
