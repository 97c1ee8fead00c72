from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify import keys


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("alice:x", "k"), ("alice", "x:k")),
        (("a", ":b"), ("a:", "b")),
        (("1", "2:3"), ("1:2", "3")),
    ],
)
def test_idempotency_keys_of_different_pairs_differ(
    one: tuple[str, str], other: tuple[str, str]
) -> None:
    assert keys.idempotency(*one) != keys.idempotency(*other)


@given(st.tuples(st.text(), st.text()), st.tuples(st.text(), st.text()))
def test_idempotency_key_is_injective(one: tuple[str, str], other: tuple[str, str]) -> None:
    if one != other:
        assert keys.idempotency(*one) != keys.idempotency(*other)
