"""Channel names and patterns: grammar, matching, coverage and a matching index.

A channel is 1-16 dot-separated segments of ``[A-Za-z0-9_@:-]`` (1-64 chars each,
255 in all). A pattern may also use ``*`` (exactly one segment) and, as its last
segment only, ``>`` (one or more segments).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Generic, TypeGuard, TypeVar

from notify.errors import InvalidChannel

MAX_LENGTH = 255
MAX_SEGMENTS = 16
MAX_SEGMENT_LENGTH = 64
_SEGMENT = re.compile(r"[A-Za-z0-9_@:\-]{1,64}")
STAR = "*"
TAIL = ">"


def _check_segments(value: object, *, pattern: bool, field: str) -> list[str]:
    kind = "pattern" if pattern else "channel"
    if not isinstance(value, str):
        raise InvalidChannel(f"{kind} must be a string", field=field)
    if not value:
        raise InvalidChannel(f"{kind} must not be empty", field=field)
    if len(value) > MAX_LENGTH:
        raise InvalidChannel(f"{kind} is longer than {MAX_LENGTH} characters", field=field)
    segments = value.split(".")
    if len(segments) > MAX_SEGMENTS:
        raise InvalidChannel(f"{kind} has more than {MAX_SEGMENTS} segments", field=field)
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if pattern and seg == STAR:
            continue
        if pattern and seg == TAIL:
            if i != last:
                raise InvalidChannel("'>' may only be the last segment", field=field)
            continue
        if not _SEGMENT.fullmatch(seg):
            raise InvalidChannel(
                f"invalid {kind} segment {seg!r}: 1-64 characters of [A-Za-z0-9_@:-]"
                + (", or '*' / '>'" if pattern else ""),
                field=field,
            )
    return segments


# whole-name expressions answer the common (valid) case in one call; the segment
# walk above runs only to explain a refusal
_SEG = r"[A-Za-z0-9_@:\-]{1,64}"
_CHANNEL = re.compile(rf"{_SEG}(?:\.{_SEG}){{0,15}}")
_PATTERN = re.compile(rf"(?:{_SEG}|\*)(?:\.(?:{_SEG}|\*)){{0,15}}(?:\.>)?|>")


def _valid_length_pattern(value: str) -> bool:
    return len(value) <= MAX_LENGTH and value.count(".") < MAX_SEGMENTS


class Remembered:
    """A check of strings that remembers the ones it passed (up to ``size``, then it
    forgets them all at once): a batch repeats a few channels and types, and a set
    lookup costs a fraction of the regular expression. False means "not plainly
    valid": the caller's field-by-field path decides and explains."""

    __slots__ = ("_check", "_seen", "_size")

    def __init__(self, check: Callable[[str], object], size: int = 4096) -> None:
        self._check = check
        self._seen: set[str] = set()
        self._size = size

    def __call__(self, value: object) -> TypeGuard[str]:
        if type(value) is not str:
            return False
        if value in self._seen:
            return True
        if not self._check(value):
            return False
        if len(self._seen) >= self._size:
            self._seen.clear()
        self._seen.add(value)
        return True


plainly_valid_channel = Remembered(lambda v: len(v) <= MAX_LENGTH and _CHANNEL.fullmatch(v))
"""True for the common well-formed channel; False means :func:`validate_channel`
must decide."""


def validate_channel(value: object, field: str = "channel") -> str:
    if isinstance(value, str) and len(value) <= MAX_LENGTH and _CHANNEL.fullmatch(value):
        return value
    _check_segments(value, pattern=False, field=field)
    assert isinstance(value, str)
    return value


def validate_pattern(value: object, field: str = "channel") -> str:
    if isinstance(value, str) and _valid_length_pattern(value) and _PATTERN.fullmatch(value):
        return value
    _check_segments(value, pattern=True, field=field)
    assert isinstance(value, str)
    return value


def is_segment(value: str) -> bool:
    return bool(_SEGMENT.fullmatch(value))


def is_wildcard(pattern: str) -> bool:
    return any(seg in (STAR, TAIL) for seg in pattern.split("."))


def matches(pattern: str, channel: str) -> bool:
    """True when the (valid) pattern matches the (valid) channel."""
    p = pattern.split(".")
    c = channel.split(".")
    for i, seg in enumerate(p):
        if seg == TAIL:
            return len(c) > i
        if i >= len(c):
            return False
        if seg != STAR and seg != c[i]:
            return False
    return len(p) == len(c)


def covers(outer: str, inner: str) -> bool:
    """True when every channel matched by ``inner`` is matched by ``outer``."""
    a = outer.split(".")
    b = inner.split(".")
    for i, seg in enumerate(a):
        if seg == TAIL:
            return len(b) > i
        if i >= len(b):
            return False
        other = b[i]
        if other == TAIL:
            return False
        if seg == STAR:
            continue
        if other != seg:
            return False
    return len(a) == len(b)


def covered_by_any(patterns: Iterable[str], inner: str) -> bool:
    return any(covers(p, inner) for p in patterns)


K = TypeVar("K", bound=Hashable)


class _Node(Generic[K]):
    __slots__ = ("children", "here", "star", "tail")

    def __init__(self) -> None:
        self.children: dict[str, _Node[K]] = {}
        self.star: _Node[K] | None = None
        self.here: set[K] = set()
        self.tail: set[K] = set()

    def empty(self) -> bool:
        return not (self.children or self.star or self.here or self.tail)


class PatternIndex(Generic[K]):
    """Maps patterns to subscribers; finds a channel's subscribers in time that grows
    with the number of matching entries, not with the number of patterns.

    Exact channels sit in a dict; wildcard patterns in a segment trie.
    """

    def __init__(self) -> None:
        self._exact: dict[str, set[K]] = {}
        self._root: _Node[K] = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, pattern: str, key: K) -> None:
        if not is_wildcard(pattern):
            bucket = self._exact.setdefault(pattern, set())
            if key not in bucket:
                bucket.add(key)
                self._count += 1
            return
        node = self._root
        segments = pattern.split(".")
        for seg in segments[:-1]:
            node = self._step(node, seg)
        last = segments[-1]
        target = node.tail if last == TAIL else self._step(node, last).here
        if key not in target:
            target.add(key)
            self._count += 1

    @staticmethod
    def _step(node: _Node[K], seg: str) -> _Node[K]:
        if seg == STAR:
            if node.star is None:
                node.star = _Node()
            return node.star
        child = node.children.get(seg)
        if child is None:
            child = node.children[seg] = _Node()
        return child

    def remove(self, pattern: str, key: K) -> None:
        if not is_wildcard(pattern):
            bucket = self._exact.get(pattern)
            if bucket and key in bucket:
                bucket.discard(key)
                self._count -= 1
                if not bucket:
                    del self._exact[pattern]
            return
        path: list[tuple[_Node[K], str]] = []
        node: _Node[K] | None = self._root
        segments = pattern.split(".")
        for seg in segments[:-1] if segments[-1] == TAIL else segments:
            assert node is not None
            path.append((node, seg))
            node = node.star if seg == STAR else node.children.get(seg)
            if node is None:
                return
        assert node is not None
        target = node.tail if segments[-1] == TAIL else node.here
        if key not in target:
            return
        target.discard(key)
        self._count -= 1
        # prune empty branches so the trie does not grow without bound
        while path and node is not None and node.empty():
            parent, seg = path.pop()
            if seg == STAR:
                parent.star = None
            else:
                del parent.children[seg]
            node = parent

    def match(self, channel: str) -> Iterator[K]:
        """Every subscriber whose pattern matches ``channel`` (a key may repeat when
        several of its patterns match)."""
        exact = self._exact.get(channel)
        if exact:
            yield from exact
        root = self._root
        if root.empty():
            return
        segments = channel.split(".")
        n = len(segments)
        stack: list[tuple[_Node[K], int]] = [(root, 0)]
        while stack:
            node, i = stack.pop()
            if i == n:
                yield from node.here
                continue
            if node.tail:
                yield from node.tail
            child = node.children.get(segments[i])
            if child is not None:
                stack.append((child, i + 1))
            if node.star is not None:
                stack.append((node.star, i + 1))
