"""Topic validation and the {user} placeholder (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from notify.errors import InvalidInput
from notify.topics import Topic, parse_topic

GOOD = {"title": "Orders", "channel": "user.{user}.orders", "sinks": ["web", "email"]}


def test_a_topic_resolves_user_and_round_trips() -> None:
    topic = parse_topic("orders", {**GOOD, "types": ["order.*"], "description": "d"})
    assert topic.channel_for("bob") == "user.bob.orders"
    assert topic.public("bob")["channel"] == "user.bob.orders"
    assert topic.public("bob")["template"] == "user.{user}.orders"
    assert Topic.loads(topic.dumps()) == topic


@pytest.mark.parametrize(
    ("topic_id", "body", "field"),
    [
        ("bad id", GOOD, "id"),
        ("x" * 65, GOOD, "id"),
        ("t", [], "body"),
        ("t", {**GOOD, "title": ""}, "title"),
        ("t", {**GOOD, "title": "x" * 201}, "title"),
        ("t", {**GOOD, "description": 5}, "description"),
        ("t", {**GOOD, "channel": "orders..x"}, "channel"),
        ("t", {**GOOD, "channel": "user.{other}"}, "channel"),
        ("t", {**GOOD, "channel": None}, "channel"),
        ("t", {**GOOD, "sinks": []}, "sinks"),
        ("t", {**GOOD, "sinks": ["web", "web"]}, "sinks"),
        ("t", {**GOOD, "sinks": ["pager"]}, "sinks[0]"),
        ("t", {**GOOD, "types": "order.*"}, "types"),
        ("t", {**GOOD, "extra": 1}, "extra"),
    ],
)
def test_bad_topics_name_the_field(topic_id: str, body: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_topic(topic_id, body)
    assert caught.value.field == field
