"""Which addresses a webhook may reach: IPv4, IPv6, IPv4-mapped and other embeddings."""

from __future__ import annotations

import pytest

from notify.ssrf import ascii_name, classify, parse, refusal, scrub


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("93.184.216.34", None),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.0.8", "reserved"),
        ("198.18.0.1", "reserved"),
        ("2606:4700:4700::1111", None),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "private"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:8.8.8.8", None),
        ("::127.0.0.1", "loopback"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::808:808", None),
        ("64:ff9b:1::1", "private"),
        ("2002:a00:1::", "private"),
        ("2002:808:808::", None),
    ],
)
def test_classify(address: str, reason: str | None) -> None:
    parsed = parse(address)
    assert parsed is not None
    assert classify(parsed) == reason


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("[::1]", "::1"), ("fe80::1%eth0", "fe80::1"), ("example.com", None), ("1.2.3", None)],
)
def test_parse(text: str, parsed: str | None) -> None:
    got = parse(text)
    assert (str(got) if got else None) == parsed


def test_refusal() -> None:
    assert refusal("127.0.0.1", allow_private=False) == "it resolves to a loopback address"
    assert refusal("10.1.2.3", allow_private=False) == "it resolves to a private address"
    assert refusal("127.0.0.1", allow_private=True) is None
    assert refusal("8.8.8.8", allow_private=False) is None


@pytest.mark.parametrize(
    ("host", "encoded"),
    [
        ("example.com", "example.com"),
        ("hooks.internal_net", "hooks.internal_net"),  # ASCII passes as it is
        ("faß.de", "xn--fa-hia.de"),  # IDNA 2003 would say "fass.de": another domain
        ("Bücher.DE", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    ],
)
def test_names_are_encoded_as_browsers_encode_them(host: str, encoded: str) -> None:
    assert ascii_name(host) == encoded


@pytest.mark.parametrize("host", ["a..b", "a" * 64 + ".com", "☃.net", "exa mple.dé"])
def test_names_that_cannot_be_encoded_are_refused(host: str) -> None:
    with pytest.raises(UnicodeError):
        ascii_name(host)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "ConnectError: [Errno 111] connect to 10.0.0.5:8080 failed",
            "ConnectError: [Errno 111] connect to <address> failed",
        ),
        ("cannot reach [fd00::1]:443 or fe80::1", "cannot reach <address> or <address>"),
        ("HTTP 500: upstream 192.168.1.20 down", "HTTP 500: upstream <address> down"),
        ("HTTP 503", "HTTP 503"),
        ("ReadTimeout: timed out after 15.0 s", "ReadTimeout: timed out after 15.0 s"),
        ("at 12:30:45 version 1.2.3", "at 12:30:45 version 1.2.3"),
    ],
)
def test_scrub(text: str, expected: str) -> None:
    assert scrub(text) == expected
