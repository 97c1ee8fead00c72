"""Reading log entries: what notify wrote becomes an Entry, anything else None."""

from __future__ import annotations

import pytest

from notify.eventlog import Entry
from notify.redis.eventlog import entry_from, entry_from_flat

BODY = b'{"channel":"a.b","type":"t","data":1,"time":"2026-11-27T05:00:00.123Z"}'


def test_an_entry_notify_wrote() -> None:
    fields = {b"c": b"a.b", b"t": b"t", b"o": b"tab", b"b": BODY}
    expected = Entry("1-0", "a.b", "t", "tab", BODY)
    assert entry_from(b"1-0", fields) == expected
    assert entry_from_flat(b"1-0", [b"c", b"a.b", b"t", b"t", b"o", b"tab", b"b", BODY]) == expected
    # fields in another order, or no origin: still read
    assert entry_from_flat(b"1-0", [b"b", BODY, b"t", b"t", b"c", b"a.b"]) == Entry(
        "1-0", "a.b", "t", "", BODY
    )


@pytest.mark.parametrize(
    "fields",
    [
        [],
        [b"foo", b"bar"],
        [b"c", b"a.b", b"b", BODY],
        [b"c", b"a.b", b"t", b"t", b"o", b"", b"b", b"not an envelope"],
        [b"c", b"a.b", b"t", b"t", b"o", b"", b"b", b'{"channel":"a.b"'],
        [b"c", b"a.\xff", b"t", b"t", b"o", b"", b"b", BODY],
        [b"c", b"a.b", b"t", b"t\xff", b"o", b"", b"b", BODY],
        [b"c", b"a.b", b"t"],
    ],
)
def test_an_entry_notify_did_not_write_is_none(fields: list[bytes]) -> None:
    assert entry_from_flat(b"1-0", fields) is None
    assert entry_from(b"1-0", dict(zip(fields[0::2], fields[1::2], strict=False))) is None
