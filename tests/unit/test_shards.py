"""notify.shards: channel -> shard, a hash tag per shard in its own part of the slot
space, and the cursor that covers every shard."""

from __future__ import annotations

import pytest

from notify import keys, shards
from notify.errors import InvalidCursor
from notify.shards import Positions


def test_crc16_is_redis_clusters_key_hash() -> None:
    # the check value of CRC-16/XMODEM, and slots Redis itself gives (CLUSTER KEYSLOT)
    assert shards.crc16(b"123456789") == 0x31C3
    assert shards.slot("foo") == 12182


@pytest.mark.parametrize("count", [2, 3, 4, 5, 8, 16])
def test_each_shard_tag_falls_in_its_own_part_of_the_slot_space(count: int) -> None:
    slots = [shards.slot(shards.tag(s, count)) for s in range(count)]
    for s, slot in enumerate(slots):
        assert s * 16384 // count <= slot < (s + 1) * 16384 // count
    assert len(set(slots)) == count


def test_one_shard_keeps_the_keys_of_an_unsharded_log() -> None:
    only = keys.shard(0, 1)
    assert only.log == keys.LOG == "notify:{n}:log"
    assert only.channel_stream("a.b") == keys.channel_stream("a.b")
    assert only.idempotency(keys.idempotency("alice", "k")) == keys.idempotency("alice", "k")


def test_a_shards_keys_share_its_tag() -> None:
    third = keys.shard(2, 3)
    tag = "{" + shards.tag(2, 3) + "}"
    assert tag != "{n}"
    for key in (
        third.log,
        third.channel_stream("x"),
        third.idempotency(keys.idempotency("a", "k")),
    ):
        assert tag in key
        assert "{n}" not in key


def test_channels_spread_over_shards_and_stay_put() -> None:
    channels = [f"orders.{i}" for i in range(300)]
    placed = [shards.shard_of(c, 3) for c in channels]
    assert placed == [shards.shard_of(c, 3) for c in channels]
    assert all(placed.count(s) > 60 for s in range(3))
    assert {shards.shard_of(c, 1) for c in channels} == {0}


def test_split_and_merge_keep_the_order_of_a_batch() -> None:
    channels = [f"c.{i}" for i in range(50)]
    groups = shards.split(channels, 4)
    assert sorted(i for idx in groups.values() for i in idx) == list(range(50))
    for s, idx in groups.items():
        assert idx == sorted(idx)
        assert {shards.shard_of(channels[i], 4) for i in idx} == {s}
    parts = {s: [channels[i] for i in idx] for s, idx in groups.items()}
    assert shards.merge(parts, groups, 50) == channels


def test_one_shard_positions_are_event_ids() -> None:
    one = Positions(1)
    assert one.encode([(1732683600000, 7)]) == "1732683600000-7"
    assert one.parse("1732683600000-7") == ((1732683600000, 7),)
    with pytest.raises(InvalidCursor):
        one.parse("~1.2")  # a sharded store's cursor


def test_cursor_round_trip_is_short_and_exact() -> None:
    three = Positions(3)
    vector = ((1732683600000, 0), (1732683600001, 4), (0, 0))
    text = three.encode(vector)
    assert text == "~m3zf2u80.m3zf2u81-4."
    assert three.parse(text) == vector
    assert len(three.encode([(2**64 - 1, 2**64 - 1)] * 3)) <= three.max_length()
    assert three.max_length() <= shards.MAX_CURSOR


def test_an_event_id_is_a_point_on_every_shard() -> None:
    assert Positions(3).parse("5-1") == ((5, 1), (5, 1), (5, 1))


@pytest.mark.parametrize(
    "bad", ["~1.2", "~1.2.3.4", "~1.-2.3", "~A.2.3", "~1.2.3-", "~" + "z" * 14 + ".1.2", "x-1"]
)
def test_malformed_or_foreign_cursors_are_400(bad: str) -> None:
    with pytest.raises(InvalidCursor):
        Positions(3).parse(bad, field="last_event_id")


def test_check_accepts_both_forms_and_refuses_the_rest() -> None:
    assert shards.check("1-0", "after") == "1-0"
    assert shards.check("~1.2-3.", "after") == "~1.2-3."
    for bad in ("~1_2", "~" + "." * 64, "1-", "abc"):
        with pytest.raises(InvalidCursor) as caught:
            shards.check(bad, "after")
        assert caught.value.field == "after"


def test_behind_and_covers_compare_every_shard() -> None:
    three = Positions(3)
    a = three.encode([(5, 0), (5, 1), (5, 2)])
    b = three.encode([(5, 0), (6, 1), (5, 2)])
    assert three.behind(a, b)
    assert not three.behind(b, a)
    assert three.covers(three.parse(b), three.parse(a))
    assert not three.covers(three.parse(a), three.parse(b))
