from __future__ import annotations

import pytest

from notify.origins import origin_allowed


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
