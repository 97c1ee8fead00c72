"""Signed unsubscribe tokens."""

from __future__ import annotations

import pytest

from notify import unsubscribe

KEY = unsubscribe.derive_key("s" * 32)
SUB = "sub_abcdefghijklmnopqrstuvwx"


def test_token_round_trip_and_url() -> None:
    token = unsubscribe.token(KEY, SUB, "bob@example.com")
    assert token.startswith(SUB + ".") and len(token) == len(SUB) + 1 + 22
    assert unsubscribe.subscription_of(token) == SUB
    assert unsubscribe.verify(KEY, token, "bob@example.com")
    assert unsubscribe.verify(KEY, token, "Bob@Example.com")  # addresses compare caselessly
    assert unsubscribe.url("https://n.example/", KEY, SUB, "bob@example.com") == (
        "https://n.example/v1/unsubscribe/" + token
    )


def test_tokens_are_stable_and_distinct() -> None:
    a = unsubscribe.token(KEY, SUB, "bob@example.com")
    assert unsubscribe.token(KEY, SUB, "bob@example.com") == a
    assert unsubscribe.token(KEY, SUB, "eve@example.com") != a
    assert unsubscribe.token(unsubscribe.derive_key("t" * 32), SUB, "bob@example.com") != a


@pytest.mark.parametrize(
    ("mangle", "address"),
    [
        (lambda t: t, "eve@example.com"),  # signed for another address
        (lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), "bob@example.com"),
        (lambda t: t.replace("sub_abc", "sub_abd"), "bob@example.com"),
        (lambda t: t + "x", "bob@example.com"),
        (lambda t: t.split(".")[0], "bob@example.com"),
        (lambda t: "", "bob@example.com"),
        (lambda t: "../" + t, "bob@example.com"),
    ],
)
def test_bad_tokens_do_not_verify(mangle: object, address: str) -> None:
    token = unsubscribe.token(KEY, SUB, "bob@example.com")
    assert callable(mangle)
    assert not unsubscribe.verify(KEY, mangle(token), address)


def test_key_choice() -> None:
    assert unsubscribe.key_from(None, None) is None
    assert unsubscribe.key_from(None, "j" * 32) == unsubscribe.derive_key("j" * 32)
    assert unsubscribe.key_from("u" * 32, "j" * 32) == unsubscribe.derive_key("u" * 32)
    # derived, never the JWT secret itself
    assert unsubscribe.derive_key("j" * 32) != b"j" * 32
