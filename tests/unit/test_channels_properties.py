"""Property tests: the channel grammar and matching against reference implementations."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from notify.channels import PatternIndex, covers, matches, validate_channel, validate_pattern
from notify.errors import InvalidChannel

SEGMENT_CHARS = "ab"  # a tiny alphabet makes collisions, and so matches, likely
segments = st.text(alphabet=SEGMENT_CHARS, min_size=1, max_size=2)
channels = st.lists(segments, min_size=1, max_size=4).map(".".join)
pattern_segments = st.one_of(segments, st.just("*"))


@st.composite
def patterns(draw: st.DrawFn) -> str:
    parts = draw(st.lists(pattern_segments, min_size=1, max_size=4))
    if draw(st.booleans()):
        parts[-1] = ">"
    return ".".join(parts)


def reference_regex(pattern: str) -> re.Pattern[str]:
    """Patterns as regular expressions, written independently of the implementation."""
    out = []
    for seg in pattern.split("."):
        if seg == "*":
            out.append(r"[^.]+")
        elif seg == ">":
            out.append(r"[^.]+(?:\.[^.]+)*")
        else:
            out.append(re.escape(seg))
    return re.compile(r"\.".join(out))


def universe(*pats: str) -> list[str]:
    """Channels of up to 5 segments built from the patterns' literals and one fresh
    segment: enough to tell coverage apart for patterns of up to 4 segments."""
    literals = sorted({s for p in pats for s in p.split(".") if s not in ("*", ">")} | {"z"})
    return [".".join(c) for n in range(1, 6) for c in itertools.product(literals, repeat=n)]


@given(patterns(), channels)
def test_matches_agrees_with_the_reference(pattern: str, channel: str) -> None:
    assert matches(pattern, channel) == bool(reference_regex(pattern).fullmatch(channel))


@settings(max_examples=200)
@given(patterns(), patterns())
def test_covers_agrees_with_brute_force(outer: str, inner: str) -> None:
    # a universe of channels up to 5 segments decides coverage for patterns of up to 4
    expected = all(matches(outer, c) for c in universe(outer, inner) if matches(inner, c))
    if expected and inner.endswith(">") and not outer.endswith(">"):
        # `inner` also matches channels longer than the universe; `outer` cannot
        expected = False
    assert covers(outer, inner) == expected


@given(st.lists(patterns(), max_size=12), st.lists(patterns(), max_size=6), channels)
def test_index_finds_exactly_the_matching_patterns(
    added: list[str], removed: list[str], channel: str
) -> None:
    index: PatternIndex[str] = PatternIndex()
    for p in added:
        index.add(p, p)
    for p in removed:
        index.remove(p, p)
    live = set(added) - set(removed)
    assert set(index.match(channel)) == {p for p in live if matches(p, channel)}
    assert len(index) == len(live)


@given(st.text(max_size=300))
def test_validation_never_crashes_and_agrees_with_the_grammar(text: str) -> None:
    segment = re.compile(r"[A-Za-z0-9_@:\-]{1,64}")
    parts = text.split(".")
    channel_ok = (
        0 < len(text) <= 255 and len(parts) <= 16 and all(segment.fullmatch(p) for p in parts)
    )
    try:
        validate_channel(text)
        assert channel_ok
    except InvalidChannel:
        assert not channel_ok
    pattern_ok = (
        0 < len(text) <= 255
        and len(parts) <= 16
        and all(
            segment.fullmatch(p) or p == "*" or (p == ">" and i == len(parts) - 1)
            for i, p in enumerate(parts)
        )
    )
    try:
        validate_pattern(text)
        assert pattern_ok
    except InvalidChannel:
        assert not pattern_ok
