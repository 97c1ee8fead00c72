from __future__ import annotations

import itertools

import pytest

from notify.channels import (
    MAX_SEGMENT_LENGTH,
    PatternIndex,
    Remembered,
    covered_by_any,
    covers,
    is_wildcard,
    matches,
    plainly_valid_channel,
    validate_channel,
    validate_pattern,
)
from notify.errors import InvalidChannel


def of_length(total: int, segment: int = 64) -> str:
    """A valid-looking name of exactly ``total`` characters, segments at most ``segment``."""
    parts: list[str] = []
    left = total
    while left > 0:
        take = min(segment, left)
        if parts:
            take = min(segment, left - 1)
            left -= 1
        parts.append("a" * take)
        left -= take
    name = ".".join(parts)
    assert len(name) == total
    return name


VALID_CHANNELS = [
    "orders",
    "docs.42",
    "user.alice",
    "alerts.prod.db",
    "A-Z_a@b:c",
    "-",
    "a" * 64,
    "a" * 64 + "." + "b" * 64,
    of_length(255),
    ".".join(["a"] * 16),
    ".".join(["x" * 15] * 16),  # 16 segments, 255 characters
]

INVALID_CHANNELS = [
    "",
    "a" * 65,
    "ok." + "a" * 65,
    of_length(256),
    ".".join(["a"] * 17),
    "a..b",
    ".a",
    "a.",
    ".",
    "a b",
    "a/b",
    "a#b",
    "a$",
    "é",
    "a\n",
    "\na",
    "a\x00",
    "*",
    ">",
    "a.*",
    "a.>",
    "a*",
]


@pytest.mark.parametrize("name", VALID_CHANNELS)
def test_valid_channels(name: str) -> None:
    assert validate_channel(name) == name
    assert validate_pattern(name) == name


@pytest.mark.parametrize("name", INVALID_CHANNELS)
def test_invalid_channels(name: str) -> None:
    with pytest.raises(InvalidChannel) as info:
        validate_channel(name, field="events[3].channel")
    assert info.value.field == "events[3].channel"


def test_the_remembered_fast_check_agrees_with_the_full_one() -> None:
    for _ in range(2):  # the second round answers valid names from memory
        for name in VALID_CHANNELS:
            assert plainly_valid_channel(name)
        for bad in [*INVALID_CHANNELS, None, 5, b"orders", ["orders"]]:
            assert not plainly_valid_channel(bad)


def test_remembered_forgets_at_its_size_and_still_answers() -> None:
    checked: list[str] = []

    def check(value: str) -> bool:
        checked.append(value)
        return value.startswith("ok")

    valid = Remembered(check, size=2)
    assert valid("ok1") and valid("ok2") and valid("ok1")
    assert checked == ["ok1", "ok2"]  # the repeat came from memory
    assert valid("ok3")  # memory full: forgotten, then this one remembered
    assert valid("ok1") and checked == ["ok1", "ok2", "ok3", "ok1"]
    assert not valid("bad") and not valid("bad")
    assert checked.count("bad") == 2  # a refusal is never remembered


@pytest.mark.parametrize("value", [None, 5, b"orders", ["orders"], {"a": 1}])
def test_non_string_names(value: object) -> None:
    with pytest.raises(InvalidChannel, match="must be a string"):
        validate_channel(value)
    with pytest.raises(InvalidChannel, match="must be a string"):
        validate_pattern(value)


@pytest.mark.parametrize(
    "pattern",
    ["*", ">", "orders.*", "orders.>", "*.>", "a.*.b", "*.*", ".".join(["*"] * 16), "a.*.>"],
)
def test_valid_patterns(pattern: str) -> None:
    assert validate_pattern(pattern, field="subscribe") == pattern
    assert is_wildcard(pattern)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (">.a", "'>' may only be the last segment"),
        ("a.>.b", "'>' may only be the last segment"),
        (">.>", "'>' may only be the last segment"),
        ("a*", "invalid pattern segment"),
        ("a>", "invalid pattern segment"),
        ("**", "invalid pattern segment"),
        ("a.**", "invalid pattern segment"),
        ("a..*", "invalid pattern segment"),
        ("*.", "invalid pattern segment"),
        ("", "must not be empty"),
        (".".join(["*"] * 17), "more than 16 segments"),
        ("*." + of_length(254), "longer than 255"),
    ],
)
def test_invalid_patterns(pattern: str, message: str) -> None:
    with pytest.raises(InvalidChannel, match=message) as info:
        validate_pattern(pattern, field="subscribe")
    assert info.value.field == "subscribe"


def test_default_field_is_channel() -> None:
    with pytest.raises(InvalidChannel) as info:
        validate_pattern("a..b")
    assert info.value.field == "channel"
    assert info.value.status == 422
    with pytest.raises(InvalidChannel) as info:
        validate_channel("a..b")
    assert info.value.field == "channel"


SEGMENT_RULE = "1-64 characters of [A-Za-z0-9_@:-]"


@pytest.mark.parametrize(
    ("value", "channel", "pattern"),
    [
        (5, "channel must be a string", "pattern must be a string"),
        ("", "channel must not be empty", "pattern must not be empty"),
        (
            of_length(256),
            "channel is longer than 255 characters",
            "pattern is longer than 255 characters",
        ),
        (
            ".".join(["a"] * 17),
            "channel has more than 16 segments",
            "pattern has more than 16 segments",
        ),
        (
            "a b",
            f"invalid channel segment 'a b': {SEGMENT_RULE}",
            f"invalid pattern segment 'a b': {SEGMENT_RULE}, or '*' / '>'",
        ),
        # at the limits, the real fault is named, not the limit
        (
            "a!." + of_length(252),
            f"invalid channel segment 'a!': {SEGMENT_RULE}",
            f"invalid pattern segment 'a!': {SEGMENT_RULE}, or '*' / '>'",
        ),
        (
            ".".join(["a!"] + ["a"] * 15),
            f"invalid channel segment 'a!': {SEGMENT_RULE}",
            f"invalid pattern segment 'a!': {SEGMENT_RULE}, or '*' / '>'",
        ),
        (
            "a.>.b",
            "invalid channel segment '>': " + SEGMENT_RULE,
            "'>' may only be the last segment",
        ),
    ],
)
def test_refusals_say_exactly_what_is_wrong(value: object, channel: str, pattern: str) -> None:
    # these messages reach API clients as the problem's detail
    with pytest.raises(InvalidChannel) as info:
        validate_channel(value)
    assert info.value.detail == channel
    with pytest.raises(InvalidChannel) as info:
        validate_pattern(value)
    assert info.value.detail == pattern


@pytest.mark.parametrize(
    "pattern",
    [
        ".".join(["a"] * 16) + ".>",  # 17 segments, the last one '>'
        ".".join(["*"] * 16) + ".>",
        ">XX",  # '>' glued to a segment, first or last
        ">a",
        "a.b>",
    ],
)
def test_patterns_the_fast_check_must_not_pass(pattern: str) -> None:
    with pytest.raises(InvalidChannel):
        validate_pattern(pattern)


def test_segment_length_limit_is_the_grammars() -> None:
    # other modules (user names) build on this figure: it must be what channels allow
    assert MAX_SEGMENT_LENGTH == 64
    assert validate_channel("a" * MAX_SEGMENT_LENGTH) == "a" * 64
    with pytest.raises(InvalidChannel):
        validate_channel("a" * (MAX_SEGMENT_LENGTH + 1))


@pytest.mark.parametrize(
    ("pattern", "channel", "expected"),
    [
        ("orders", "orders", True),
        ("orders", "orders.eu", False),
        ("orders.eu", "orders", False),
        ("orders", "order", False),
        ("orders.*", "orders.eu", True),
        ("orders.*", "orders", False),
        ("orders.*", "orders.eu.x", False),
        ("orders.>", "orders.eu", True),
        ("orders.>", "orders.eu.x", True),
        ("orders.>", "orders", False),
        ("orders.>", "ordersx.eu", False),
        ("*", "a", True),
        ("*", "a.b", False),
        (">", "a", True),
        (">", "a.b.c", True),
        ("*.b", "a.b", True),
        ("*.b", "a.c", False),
        ("*.*", "a.b", True),
        ("*.*", "a", False),
        ("a.*.>", "a.b.c", True),
        ("a.*.>", "a.b", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.b.d", False),
    ],
)
def test_matches(pattern: str, channel: str, expected: bool) -> None:
    assert matches(pattern, channel) is expected


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("a", "a", True),
        ("a", "b", False),
        ("a.b", "a.b.c", False),
        ("a.b.c", "a.b", False),
        ("*", "a", True),
        ("*", "*", True),
        ("*", ">", False),
        ("*", "a.b", False),
        (">", "a", True),
        (">", "*", True),
        (">", ">", True),
        (">", "a.b.c", True),
        (">", "*.>", True),
        ("*.>", ">", False),
        ("*.>", "*.*", True),
        ("a.*", "a.b", True),
        ("a.*", "a.*", True),
        ("a.*", "a.>", False),
        ("a.*", "a.b.c", False),
        ("a.*", "*.b", False),
        ("a.b", "a.*", False),
        ("a.>", "a.*", True),
        ("a.>", "a.>", True),
        ("a.>", "a.*.>", True),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("a.>", "b.>", False),
        ("a.>", ">", False),
        ("a.b", "a", False),  # an inner pattern shorter than the outer one
        ("a.*", "a", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.*.d", False),
        ("*.b", "a.*", False),
        ("*.*", "a.>", False),
    ],
)
def test_covers(outer: str, inner: str, expected: bool) -> None:
    assert covers(outer, inner) is expected


# Every pattern of up to 3 segments over {a, b, *, >}; channels of up to 5 segments over
# {a, b, c} witness every difference between such patterns ("c" is "any other segment").
SMALL_PATTERNS = [
    ".".join(segs)
    for n in (1, 2, 3)
    for segs in itertools.product("ab*>", repeat=n)
    if ">" not in segs[:-1]
]
SMALL_CHANNELS = [
    ".".join(segs) for n in range(1, 6) for segs in itertools.product("abc", repeat=n)
]


def _matched(pattern: str) -> frozenset[str]:
    return frozenset(c for c in SMALL_CHANNELS if matches(pattern, c))


def test_covers_agrees_with_matching_exhaustively() -> None:
    matched = {p: _matched(p) for p in SMALL_PATTERNS}
    wrong = [
        (outer, inner)
        for outer in SMALL_PATTERNS
        for inner in SMALL_PATTERNS
        if covers(outer, inner) != (matched[inner] <= matched[outer])
    ]
    assert wrong == []


def test_covered_by_any() -> None:
    assert covered_by_any(["x", "orders.>"], "orders.eu.*")
    assert not covered_by_any(["x", "orders.*"], "orders.>")
    assert not covered_by_any([], "orders")


def test_index_matches_like_matches_exhaustively() -> None:
    index: PatternIndex[str] = PatternIndex()
    for pattern in SMALL_PATTERNS:
        index.add(pattern, pattern)
    assert len(index) == len(SMALL_PATTERNS)
    for channel in SMALL_CHANNELS:
        found = list(index.match(channel))
        assert len(found) == len(set(found))
        assert set(found) == {p for p in SMALL_PATTERNS if matches(p, channel)}, channel


@pytest.mark.parametrize(
    ("entries", "channel", "expected"),
    [
        ([("orders.eu", 1)], "orders.eu", [1]),
        ([("orders.eu", 1)], "orders", []),
        ([("orders.*", 1)], "orders.eu", [1]),
        ([("orders.*", 1)], "orders", []),
        ([("orders.*", 1)], "orders.eu.x", []),
        ([("orders.>", 1)], "orders", []),
        ([("orders.>", 1)], "orders.eu.x", [1]),
        ([(">", 1)], "a", [1]),
        ([("*", 1), ("a", 2), ("a.>", 3)], "a", [1, 2]),
        ([("*.b", 1), ("a.*", 2), ("a.b", 3), ("c.*", 4)], "a.b", [1, 2, 3]),
        ([("a.*.>", 1), ("a.*", 2)], "a.b", [2]),
    ],
)
def test_index_match(entries: list[tuple[str, int]], channel: str, expected: list[int]) -> None:
    index: PatternIndex[int] = PatternIndex()
    for pattern, key in entries:
        index.add(pattern, key)
    assert sorted(index.match(channel)) == expected


def test_index_key_repeats_once_per_matching_pattern() -> None:
    index: PatternIndex[str] = PatternIndex()
    for pattern in ("a.b", "a.*", "a.>", ">"):
        index.add(pattern, "k")
    assert list(index.match("a.b")) == ["k"] * 4
    assert len(index) == 4


@pytest.mark.parametrize("pattern", ["a.b", "a.*", "a.>", "*", ">", "*.*.>"])
def test_index_duplicate_add_counts_once_and_removes_once(pattern: str) -> None:
    index: PatternIndex[str] = PatternIndex()
    index.add(pattern, "k")
    index.add(pattern, "k")
    index.add(pattern, "j")
    assert len(index) == 2
    index.remove(pattern, "k")
    assert len(index) == 1
    index.remove(pattern, "k")
    assert len(index) == 1
    channel = pattern.replace("*", "x").replace(">", "y")
    assert list(index.match(channel)) == ["j"]


@pytest.mark.parametrize(
    ("present", "absent"),
    [
        ("a.b", "a.c"),
        ("a.*", "a.b"),
        ("a.*", "a.*.c"),
        ("a.*.c", "a.*"),
        ("a.>", "a.*"),
        ("a.*", "a.>"),
        ("a.b.>", "a.>"),
        ("*", ">"),
        (">", "*"),
        ("x.*.y", "x.*.z"),
    ],
)
def test_index_remove_absent_is_a_no_op(present: str, absent: str) -> None:
    index: PatternIndex[str] = PatternIndex()
    index.add(present, "k")
    index.remove(absent, "k")
    index.remove(present, "other")
    assert len(index) == 1
    channel = present.replace("*", "x").replace(">", "y")
    assert list(index.match(channel)) == ["k"]


def test_index_prunes_empty_branches() -> None:
    index: PatternIndex[str] = PatternIndex()
    patterns = ["a.b", "a.*", "a.*.c", "a.*.>", "a.>", "*.*.*", "*.>", ">", "x.y.z.*"]
    for pattern in patterns:
        index.add(pattern, "k")
        index.add(pattern, "j")
    for pattern in reversed(patterns):
        index.remove(pattern, "k")
    assert len(index) == len(patterns)
    for pattern in patterns:
        index.remove(pattern, "j")
    assert len(index) == 0
    assert list(index.match("a.b")) == []
    # white-box: nothing left behind, so churn does not grow the trie
    assert index._root.empty()
    assert index._exact == {}


def test_index_pruning_keeps_shared_branches() -> None:
    index: PatternIndex[str] = PatternIndex()
    index.add("a.*", "short")
    index.add("a.*.c", "long")
    index.add("a.*.>", "tail")
    index.remove("a.*.c", "long")
    assert sorted(index.match("a.b")) == ["short"]
    assert list(index.match("a.b.c")) == ["tail"]
    index.remove("a.*", "short")
    assert list(index.match("a.b.c")) == ["tail"]
    index.remove("a.*.>", "tail")
    assert index._root.empty()
