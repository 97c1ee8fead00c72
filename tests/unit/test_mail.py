"""Email building: exact headers and bodies, sanitising, truncation, templates."""

from __future__ import annotations

import email
import json
from email.message import EmailMessage, Message
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from notify import mail
from notify.errors import ConfigError
from notify.mailtemplates import load
from notify.smtpurl import SmtpTarget, parse_sender, parse_smtp_url, shown

SENDER = parse_sender("Notify <notify@example.com>")
TO = mail.Addressing(
    SENDER, "bob@example.org", "sub_abc", "orders.>", "https://n.example/v1/unsubscribe/t"
)
EVENT: dict[str, Any] = {
    "id": "1732683600000-0",
    "channel": "orders.eu",
    "type": "order.created",
    "data": {"order": 17},
    "time": "2026-11-27T05:00:00.123Z",
}
TEMPLATES = load(None)


def parsed(msg: Message) -> EmailMessage:
    """The message as a receiver reads it."""
    out = email.message_from_bytes(mail.as_bytes(msg), policy=default)
    assert isinstance(out, EmailMessage)
    return out


EXPECTED_EVENT = """\
From: Notify <notify@example.com>\r
To: bob@example.org\r
Subject: order.created on orders.eu\r
Date: Fri, 27 Nov 2026 05:00:00 +0000\r
Message-ID: <msg_1@example.com>\r
List-Unsubscribe: <https://n.example/v1/unsubscribe/t>\r
List-Unsubscribe-Post: List-Unsubscribe=One-Click\r
Auto-Submitted: auto-generated\r
X-Notify-Subscription: sub_abc\r
X-Notify-Delivery: msg_1\r
X-Notify-Event: 1732683600000-0\r
MIME-Version: 1.0\r
Content-Type: multipart/alternative; boundary="=_msg_1_1"\r
\r
--=_msg_1_1\r
MIME-Version: 1.0\r
Content-Type: text/plain; charset="utf-8"\r
Content-Transfer-Encoding: quoted-printable\r
\r
order.created on orders.eu\r
\r
Channel: orders.eu\r
Type:    order.created\r
Time:    2026-11-27T05:00:00.123Z\r
Event:   1732683600000-0\r
\r
{\r
  "order": 17\r
}\r
\r
--\r
Sent by notify for subscription sub_abc (orders.>).\r
Unsubscribe: https://n.example/v1/unsubscribe/t\r
\r
--=_msg_1_1\r
"""


def test_event_message_exact_bytes() -> None:
    raw = mail.as_bytes(mail.event_message(EVENT, "msg_1", TO, TEMPLATES)).decode()
    assert raw.startswith(EXPECTED_EVENT)
    assert raw.endswith("</body></html>\r\n\r\n--=_msg_1_1--\r\n")


def test_a_retry_builds_the_same_bytes() -> None:
    first = mail.as_bytes(mail.event_message(EVENT, "msg_1", TO, TEMPLATES))
    assert mail.as_bytes(mail.event_message(EVENT, "msg_1", TO, TEMPLATES)) == first


def test_html_part_escapes_event_data() -> None:
    event = {**EVENT, "data": {"summary": "<script>x</script> & co"}}
    msg = parsed(mail.event_message(event, "msg_1", TO, TEMPLATES))
    html = msg.get_body(("html",))
    assert html is not None
    content = html.get_content()
    assert '<h2 style="font-size: 18px">&lt;script&gt;x&lt;/script&gt; &amp; co</h2>' in content
    assert "<script>" not in content


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("a\r\nBcc: x@example.com", "a Bcc: x@example.com"),
        ("a\nb\rc\0d", "a b c d"),
        ("line\u2028sep\u2029para\u0085nel", "line sep para nel"),
        ("zero\u200bwidth", "zero width"),
        ("  lots   of\t\tspace  ", "lots of space"),
        ("x" * 300, "x" * 199 + "…"),
    ],
)
def test_header_safe(value: str, expected: str) -> None:
    assert mail.header_safe(value) == expected


def test_no_event_field_can_add_a_header() -> None:
    templates = TEMPLATES.by_name.copy()
    from string import Template

    templates["event.subject"] = Template("$summary | $origin | $type")
    custom = type(TEMPLATES)(templates, TEMPLATES.origin)
    event = {
        **EVENT,
        "origin": "o\r\nX-Origin: 1",
        "data": {"summary": "Hi\r\nBcc: victim@example.com\r\n\r\nbody"},
    }
    msg = parsed(mail.event_message(event, "msg_1", TO, custom))
    assert msg["Subject"] == "Hi Bcc: victim@example.com body | o X-Origin: 1 | order.created"
    assert msg["Bcc"] is None and msg["X-Origin"] is None
    head = mail.as_bytes(msg).split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc" not in head and b"\r\nX-Origin" not in head


def test_huge_data_is_cut_at_a_line_and_attached() -> None:
    rows = [{"row": n} for n in range(2000)]
    event = {**EVENT, "data": {"rows": rows}}
    msg = parsed(mail.event_message(event, "msg_1", TO, TEMPLATES))
    assert msg.get_content_type() == "multipart/mixed"
    text_part = msg.get_body(("plain",))
    assert text_part is not None
    text = text_part.get_content().replace("\r\n", "\n")
    assert "\n…\n" in text
    assert "The data was cut: 10,000 of " in text
    assert "attached as event-1732683600000-0.json" in text
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "event-1732683600000-0.json"
    assert json.loads(attachment.get_content())["data"]["rows"] == rows


@pytest.mark.parametrize(
    ("data", "limit", "expected"),
    [
        (None, 100, ("(no data)", 9, False)),
        ("a string\nas is", 100, ("a string\nas is", 14, False)),
        ([1, 2], 100, ("[\n  1,\n  2\n]", 12, False)),
        ("abcdefghij", 5, ("abcde\n…", 10, True)),
        ("line one\nline two", 9, ("line one\n…", 17, True)),
        ("line one\nline two", 10, ("line one\nl\n…", 17, True)),
    ],
)
def test_render_data(data: Any, limit: int, expected: tuple[str, int, bool]) -> None:
    assert mail.render_data(data, limit) == expected


def test_digest_holds_every_event_in_the_order_given() -> None:
    events = [
        {**EVENT, "id": f"1732683600000-{n}", "data": {"n": n}, "type": f"t{n}"} for n in range(3)
    ]
    msg = parsed(mail.digest_message(events, "dig_1", TO, TEMPLATES))
    assert msg["Subject"] == "3 events on orders.>"
    assert msg["Message-ID"] == "<dig_1@example.com>"
    text_part = msg.get_body(("plain",))
    assert text_part is not None
    text = text_part.get_content().replace("\r\n", "\n")
    assert text.startswith(
        "3 events on orders.>, 2026-11-27T05:00:00.123Z to 2026-11-27T05:00:00.123Z\n\n"
        "== t0 on orders.eu (2026-11-27T05:00:00.123Z, event 1732683600000-0)\n"
        '{\n  "n": 0\n}\n\n== t1 on orders.eu'
    )
    assert text.index("t0 on") < text.index("t1 on") < text.index("t2 on")
    assert list(msg.iter_attachments()) == []


def test_a_big_digest_shows_the_first_items_and_attaches_all() -> None:
    events = [{**EVENT, "id": f"1732683600000-{n}"} for n in range(mail.MAX_ITEMS_SHOWN + 5)]
    msg = parsed(mail.digest_message(events, "dig_1", TO, TEMPLATES))
    text_part = msg.get_body(("plain",))
    assert text_part is not None
    assert "5 more events are not shown." in text_part.get_content()
    [attachment] = list(msg.iter_attachments())
    assert len(json.loads(attachment.get_content())) == len(events)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail:25", SmtpTarget("mail", 25, implicit_tls=False, starttls=True)),
        ("smtp://mail", SmtpTarget("mail", 25, implicit_tls=False, starttls=True)),
        ("smtp://h:2525?starttls=false", SmtpTarget("h", 2525, implicit_tls=False, starttls=False)),
        ("smtps://h", SmtpTarget("h", 465, implicit_tls=True, starttls=False)),
        (
            "smtp://u%40x:p%3Aw@h:587",
            SmtpTarget("h", 587, implicit_tls=False, starttls=True, username="u@x", password="p:w"),
        ),
    ],
)
def test_smtp_url(url: str, expected: SmtpTarget) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    "url",
    ["http://h", "smtp://", "smtp://h/path", "smtp://h?tls=1", "smtps://h?starttls=false",
     "smtp://h?starttls=maybe", "smtp://h:99999"],
)  # fmt: skip
def test_bad_smtp_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_smtp_url(url)


@pytest.mark.parametrize(
    ("value", "address", "domain"),
    [
        ("notify@localhost", "notify@localhost", "localhost"),
        ("Alerts <alerts@Example.COM>", "alerts@Example.COM", "example.com"),
    ],
)
def test_sender(value: str, address: str, domain: str) -> None:
    sender = parse_sender(value)
    assert (sender.address, sender.domain) == (address, domain)


@pytest.mark.parametrize("value", ["nobody", "a@b\r\nBcc: c@d", "Name <>", "@x"])
def test_bad_senders(value: str) -> None:
    with pytest.raises(ValueError):
        parse_sender(value)


def test_operator_templates_override_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "event.subject").write_text("[$channel] $title costs $$5\n")
    templates = mail.prepare_templates(tmp_path, SENDER)
    msg = parsed(mail.event_message(EVENT, "msg_1", TO, templates))
    assert msg["Subject"] == "[orders.eu] order.created on orders.eu costs $5"
    assert templates.origin["event.subject"] == str(tmp_path / "event.subject")
    assert templates.origin["event.txt"] == "default event.txt"


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("event.txt", "Hi $nobody", "event.txt: unknown placeholder $nobody; known: $channel"),
        ("digest.html", "$events $type", "digest.html: unknown placeholder $type"),
        ("event.html", "costs $5", "event.html: Invalid placeholder in string: line 1, col 7"),
        ("event.htm", "x", "event.htm: unknown template name; known: digest-item.html"),
        ("event.txt", b"\xff\xfe", "event.txt: cannot be read as UTF-8"),
    ],
)
def test_broken_templates_fail_naming_the_setting(
    tmp_path: Path, name: str, text: str | bytes, error: str
) -> None:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        mail.prepare_templates(tmp_path, SENDER)
    assert caught.value.variable == "NOTIFY_EMAIL_TEMPLATES"
    assert error in str(caught.value)


def test_a_missing_template_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"NOTIFY_EMAIL_TEMPLATES: .* is not a directory"):
        mail.prepare_templates(tmp_path / "nope", SENDER)


def test_non_ascii_headers_are_encoded() -> None:
    sender = parse_sender("Nötify <notify@example.com>")
    to = mail.Addressing(sender, "bob@example.org", "sub_abc", "orders.>", "https://n/u")
    event = {**EVENT, "data": {"summary": "Größe ändert sich"}}
    templates = TEMPLATES.by_name.copy()
    from string import Template

    templates["event.subject"] = Template("$summary")
    custom = type(TEMPLATES)(templates, TEMPLATES.origin)
    raw = mail.as_bytes(mail.event_message(event, "msg_1", to, custom))
    assert raw.isascii()
    assert b"\r\nSubject: =?utf-8?q?" in raw
    msg = parsed(mail.event_message(event, "msg_1", to, custom))
    assert msg["Subject"] == "Größe ändert sich"
    assert msg["From"] == "Nötify <notify@example.com>"


@pytest.mark.parametrize(
    ("url", "printed"),
    [
        ("smtp://mailer:s3cr:et@relay:587", "smtp://mailer:***@relay:587"),
        ("smtps://mailer:p%40ss@relay", "smtps://mailer:***@relay"),
        ("smtp://relay:25?starttls=false", "smtp://relay:25?starttls=false"),
        ("smtp://mailer@relay", "smtp://mailer@relay"),
    ],
)
def test_a_printed_smtp_url_never_shows_its_password(url: str, printed: str) -> None:
    assert shown(url) == printed


def test_a_subscriptions_own_templates() -> None:
    custom = {
        "subject": "Order {{ event.data.order }}\n<{{ event.type }}>",
        "html": "<p>{{ event.type }} {{ '<script>' }}</p><a href='{{ unsubscribe_url }}'>x</a>",
    }
    msg = parsed(mail.event_message(EVENT, "msg_1", TO, TEMPLATES, custom))
    assert msg["Subject"] == "Order 17 <order.created>"  # one header line, whatever it renders
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().startswith("order.created on orders.eu\r\n")  # the default kept
    assert html.get_content().rstrip() == (
        "<p>order.created &lt;script&gt;</p><a href='https://n.example/v1/unsubscribe/t'>x</a>"
    )


def test_a_failing_email_template_raises() -> None:
    from notify.templating import TemplateError

    with pytest.raises(TemplateError, match="line 1: ZeroDivisionError"):
        mail.event_message(EVENT, "msg_1", TO, TEMPLATES, {"text": "{{ 1 / 0 }}"})
