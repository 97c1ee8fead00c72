from __future__ import annotations

import pytest

from notify.redact import redact


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GET /v1/stream?token=abc HTTP/1.1", "GET /v1/stream?token=[redacted] HTTP/1.1"),
        ('"WebSocket /v1/ws?%74oken=abc" 101', '"WebSocket /v1/ws?%74oken=[redacted]" 101'),
        ("/v1/stream?channel=a&%54OKEN=abc&x=1", "/v1/stream?channel=a&%54OKEN=[redacted]&x=1"),
        ("/x?to%6Ben=abc", "/x?to%6Ben=[redacted]"),
        ("/x?to%256Ben=abc", "/x?to%256Ben=[redacted]"),  # encoded twice
        ("/x?access_token=abc;token=def", "/x?access_token=[redacted];token=[redacted]"),
        ("/x?tok+en=abc", "/x?tok+en=abc"),  # another name
        ("/x?channel=token&last_event_id=1-0", "/x?channel=token&last_event_id=1-0"),
        ("no query here", "no query here"),
        ("/x?token=", "/x?token="),
    ],
)
def test_redact(line: str, expected: str) -> None:
    assert redact(line) == expected
