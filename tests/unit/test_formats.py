"""Webhook body formats: exact bytes for each format, and the CloudEvents SDK's reading."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from notify.formats import Body, render_body
from notify.templating import TemplateError
from tests.support import chat_schemas

ENVELOPE = (
    b'{"id":"1732683600000-0","channel":"orders.eu","type":"order.created",'
    b'"data":{"order":17},"time":"2026-11-27T05:00:00.123Z"}'
)
SUMMARY = (
    b'{"id":"1-0","channel":"c","type":"t","data":{"summary":"Disk <full> & hot"},'
    b'"time":"2026-11-27T05:00:00.123Z"}'
)


def body(sink: dict[str, Any], envelope: bytes = ENVELOPE) -> Body:
    return render_body({"kind": "webhook", "url": "https://x.example", **sink}, envelope)


def test_standard_is_the_envelope_itself() -> None:
    assert body({}) == Body(ENVELOPE, "application/json")
    assert body({"format": "standard"}) == Body(ENVELOPE, "application/json")


def test_cloudevents_exact_bytes() -> None:
    got = body({"format": "cloudevents"})
    assert got.content_type == "application/cloudevents+json; charset=utf-8"
    assert got.content == (
        b'{"specversion":"1.0","id":"1732683600000-0","source":"/channels/orders.eu",'
        b'"type":"order.created","time":"2026-11-27T05:00:00.123Z",'
        b'"datacontenttype":"application/json","channel":"orders.eu",'
        b'"notifyid":"1732683600000-0","data":{"order":17}}'
    )


def test_cloudevents_sdk_parses_it() -> None:
    got = body({"format": "cloudevents"})
    event = from_http_event(HTTPMessage({"content-type": got.content_type}, got.content))
    assert event.get_id() == "1732683600000-0"
    assert event.get_source() == "/channels/orders.eu"
    assert event.get_type() == "order.created"
    assert event.get_data() == {"order": 17}
    assert event.get_extension("channel") == "orders.eu"


def test_cloudevents_gives_back_the_attributes_it_came_with() -> None:
    envelope = orjson.dumps(
        {
            "id": "5-0",
            "channel": "k8s",
            "type": "dev.knative.ping",
            "data": "aGVsbG8=",
            "time": "2026-11-27T05:00:00.123Z",
            "ce": {
                "specversion": "1.0",
                "id": "abc",
                "source": "//knative/ping",
                "time": "2026-11-27T04:59:59Z",
                "subject": "s1",
                "datacontenttype": "application/octet-stream",
                "traceparent": "00-1-2-01",
                "data_base64": True,
            },
        }
    )
    got = body({"format": "cloudevents"}, envelope)
    value = orjson.loads(got.content)
    assert value["data_base64"] == "aGVsbG8=" and "data" not in value
    event = from_http_event(HTTPMessage({"content-type": got.content_type}, got.content))
    assert (event.get_id(), event.get_source()) == ("abc", "//knative/ping")
    assert event.get_subject() == "s1"
    assert event.get_data() == b"hello"
    assert event.get_extension("traceparent") == "00-1-2-01"
    assert event.get_extension("notifyid") == "5-0"


def test_slack_exact_bytes() -> None:
    got = body({"format": "slack"}, SUMMARY)
    assert got.content_type == "application/json"
    assert got.content == (
        b'{"text":"Disk &lt;full&gt; &amp; hot","blocks":['
        b'{"type":"header","text":{"type":"plain_text","text":"Disk <full> & hot"}},'
        b'{"type":"section","text":{"type":"mrkdwn","text":"```{\\n  \\"summary\\": '
        b'\\"Disk &lt;full&gt; &amp; hot\\"\\n}```"}},'
        b'{"type":"context","elements":[{"type":"mrkdwn","text":"Type: `t` \xc2\xb7 Channel: `c`'
        b' \xc2\xb7 Time: `2026-11-27T05:00:00.123Z` \xc2\xb7 Event: `1-0`"}]}]}'
    )


def test_discord_exact_bytes() -> None:
    got = body({"format": "discord"})
    assert got.content == (
        b'{"content":"order.created on orders.eu","allowed_mentions":{"parse":[]},"embeds":[{'
        b'"title":"order.created on orders.eu","description":"```json\\n{\\n  \\"order\\": 17\\n}'
        b'\\n```","fields":[{"name":"Type","value":"order.created","inline":true},'
        b'{"name":"Channel","value":"orders.eu","inline":true}],'
        b'"footer":{"text":"event 1732683600000-0"},"timestamp":"2026-11-27T05:00:00.123Z"}]}'
    )


def test_teams_exact_bytes() -> None:
    got = body({"format": "teams"})
    assert got.content == (
        b'{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive",'
        b'"contentUrl":null,"content":{'
        b'"$schema":"http://adaptivecards.io/schemas/adaptive-card.json",'
        b'"type":"AdaptiveCard","version":"1.4","body":['
        b'{"type":"TextBlock","text":"order.created on orders.eu","weight":"Bolder",'
        b'"size":"Medium","wrap":true},'
        b'{"type":"FactSet","facts":[{"title":"Type","value":"order.created"},'
        b'{"title":"Channel","value":"orders.eu"},'
        b'{"title":"Time","value":"2026-11-27T05:00:00.123Z"},'
        b'{"title":"Event","value":"1732683600000-0"}]},'
        b'{"type":"TextBlock","text":"{\\n  \\"order\\": 17\\n}",'
        b'"fontType":"Monospace","wrap":true}'
        b"]}}]}"
    )


def test_large_data_is_cut_to_each_services_limits() -> None:
    envelope = orjson.dumps(
        {"id": "1-0", "channel": "c", "type": "t", "time": "x", "data": {"s": "y" * 60_000}}
    )
    slack = orjson.loads(body({"format": "slack"}, envelope).content)
    assert len(slack["blocks"][1]["text"]["text"]) <= 3_000
    discord = orjson.loads(body({"format": "discord"}, envelope).content)
    assert len(discord["embeds"][0]["description"]) <= 4_096
    teams = body({"format": "teams"}, envelope).content
    assert len(teams) < 28_000


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        (
            {"format": "template", "template": '{"t": {{ event.type|tojson }}}'},
            Body(b'{"t": "order.created"}', "application/json"),
        ),
        (
            {
                "format": "template",
                "template": "order {{ event.data.order }} in {{ event.channel }}",
            },
            Body(b"order 17 in orders.eu", "text/plain; charset=utf-8"),
        ),
        (
            {"format": "slack", "template": "Order *{{ event.data.order }}*"},
            Body(b'{"text":"Order *17*"}', "application/json"),
        ),
        (
            {"format": "slack", "template": '{"text": "{{ event.type }}", "blocks": []}'},
            Body(b'{"text": "order.created", "blocks": []}', "application/json"),
        ),
        (
            {"format": "discord", "template": "{{ event.type }}"},
            Body(
                b'{"content":"order.created","allowed_mentions":{"parse":[]}}', "application/json"
            ),
        ),
    ],
)
def test_templates(sink: dict[str, Any], expected: Body) -> None:
    assert body(sink) == expected


def test_teams_template_is_the_card_text() -> None:
    card = orjson.loads(body({"format": "teams", "template": "{{ event.type }}!"}).content)
    content = card["attachments"][0]["content"]
    assert content["body"] == [{"type": "TextBlock", "text": "order.created!", "wrap": True}]


def test_a_failing_template_raises_with_its_reason() -> None:
    with pytest.raises(TemplateError, match="line 1: 'dict object' has no attribute 'x'"):
        body({"format": "template", "template": "{{ event.data.x.y }}"})


@pytest.mark.parametrize("service", ["slack", "discord", "teams"])
def test_default_renderings_pass_the_services_schemas(service: str) -> None:
    big = orjson.dumps(
        {"id": "1-0", "channel": "c", "type": "t", "time": "x", "data": {"s": "y" * 60_000}}
    )
    for envelope in (ENVELOPE, SUMMARY, big):
        assert chat_schemas.check(service, body({"format": service}, envelope).content) == []
    # and the checks do catch what a service refuses
    assert chat_schemas.check(service, b'{"text": 1, "content": "", "type": "x"}') != []
