"""Email delivery end to end: gateway, dispatcher, Celery workers and a real SMTP server."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.integration.delivery_stack import Stack
from tests.integration.mail_stack import MailStackFactory, email_sub, unsubscribe_path
from tests.support.factories import ProcFactory
from tests.support.smtp_server import SmtpServer


def test_event_is_mailed_with_text_html_and_list_headers(
    mail_stack: Stack, smtp: SmtpServer
) -> None:
    sub = email_sub(mail_stack, "bob@example.com")
    event_id = mail_stack.publish(
        "orders.eu", "order.created", {"order": 17, "summary": "Order <17> placed"}
    )
    [mail] = smtp.wait(1)
    [record] = mail_stack.wait_status(sub, "delivered")
    assert mail.sender == "notify@notify.test"
    assert mail.recipients == ["bob@example.com"]
    assert mail.header("From") == "Notify <notify@notify.test>"
    assert mail.header("To") == "bob@example.com"
    assert mail.header("Subject") == "order.created on orders.eu"
    assert mail.header("Message-ID") == f"<{record['id']}@notify.test>"
    assert mail.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    assert unsubscribe_path(mail).startswith(f"/v1/unsubscribe/{sub}.")
    assert mail.header("X-Notify-Event") == event_id
    assert mail.message.get_content_type() == "multipart/alternative"
    text = mail.text()
    assert text.startswith("Order <17> placed\n\nChannel: orders.eu\n")
    assert '"order": 17' in text
    assert '<h2 style="font-size: 18px">Order &lt;17&gt; placed</h2>' in mail.html()
    assert record["attempts"][0]["status_code"] == 250


def test_451_is_retried_with_the_same_message_id(mail_stack: Stack, smtp: SmtpServer) -> None:
    sub = email_sub(mail_stack, "later@example.com")
    smtp.answer("later@example.com", "451 4.3.0 Try again later")
    mail_stack.publish("orders.eu")
    [record] = mail_stack.wait_status(sub, "delivered")
    first, second = smtp.mails
    assert first.answer.startswith("451") and second.accepted
    assert first.header("Message-ID") == second.header("Message-ID")
    assert first.raw == second.raw  # the very same message
    assert [a["outcome"] for a in record["attempts"]] == ["retry", "delivered"]
    assert record["attempts"][0]["status_code"] == 451
    assert "Try again later" in record["attempts"][0]["error"]


def test_550_fails_with_the_reply_recorded(mail_stack: Stack, smtp: SmtpServer) -> None:
    sub = email_sub(mail_stack, "nobody@example.com")
    smtp.answer("nobody@example.com", "550 5.1.1 No such user here")
    mail_stack.publish("orders.eu")
    [record] = mail_stack.wait_status(sub, "failed")
    [attempt] = record["attempts"]
    assert attempt["status_code"] == 550
    assert attempt["error"] == "SMTP 550 5.1.1 No such user here"
    assert len(smtp.mails) == 1


def test_a_burst_to_a_digest_makes_one_message_in_order(
    mail_stack_factory: MailStackFactory, smtp: SmtpServer
) -> None:
    stack = mail_stack_factory(workers=2)
    sub = email_sub(stack, "digest@example.com", digest_seconds=2)
    ids = stack.publish_many(
        [
            {"channel": f"orders.c{n % 3}", "type": "order.created", "data": {"n": n}}
            for n in range(40)
        ]
    )
    [mail] = smtp.wait(1, timeout=20)
    time.sleep(1.0)
    assert len(smtp.mails) == 1
    assert mail.header("Subject") == "40 events on orders.>"
    text = mail.text()
    positions = [text.index(f"event {i})") for i in ids]
    assert positions == sorted(positions)
    records = stack.wait_status(sub, "delivered", count=41)
    digest = [r for r in records if r["type"] == "digest"]
    assert len(digest) == 1
    assert mail.header("Message-ID") == f"<{digest[0]['id']}@notify.test>"
    per_event = [r for r in records if r["type"] != "digest"]
    assert {r["attempts"][0]["response"] for r in per_event} == {f"in digest {digest[0]['id']}"}


def test_an_internationalised_domain_is_mailed_and_a_non_ascii_mailbox_refused(
    mail_stack: Stack, smtp: SmtpServer
) -> None:
    """SMTPUTF8 is not used: the domain goes out in its IDNA form, and a mailbox name
    that needs SMTPUTF8 is refused when subscribing, not failed at every delivery."""
    created = mail_stack.subscribe("orders.>", {"kind": "email", "to": "ops@exämple.com"})
    assert created["sink"]["to"] == "ops@xn--exmple-cua.com"
    mail_stack.publish("orders.eu")
    [mail] = smtp.wait(1)
    assert mail.recipients == ["ops@xn--exmple-cua.com"]
    mail_stack.wait_status(created["id"], "delivered")
    refused = mail_stack.client.post(
        "/v1/subscriptions",
        json={"channel": "orders.>", "sink": {"kind": "email", "to": "üser@example.com"}},
    )
    assert refused.status_code == 422 and refused.json()["field"] == "sink.to"


def test_one_click_unsubscribe_stops_mail(mail_stack: Stack, smtp: SmtpServer) -> None:
    sub = email_sub(mail_stack, "leaver@example.com")
    mail_stack.publish("orders.eu")
    [mail] = smtp.wait(1)
    path = unsubscribe_path(mail)
    page = mail_stack.client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in page.text and "leaver@example.com" in page.text
    assert mail_stack.client.get(f"/v1/subscriptions/{sub}").json()["enabled"] is True
    tampered = mail_stack.client.post(path[:-2] + ("AA" if not path.endswith("AA") else "BB"))
    assert tampered.status_code == 404
    assert tampered.headers["content-type"] == "application/problem+json"
    in_browser = mail_stack.client.get(path[:-2] + "zz", headers={"accept": "text/html"})
    assert in_browser.status_code == 404 and "not valid" in in_browser.text
    # as a mail client does it (RFC 8058), without any token
    clicked = mail_stack.client.post(
        path,
        content="List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded", "authorization": ""},
    )
    assert clicked.status_code == 200
    state = mail_stack.client.get(f"/v1/subscriptions/{sub}").json()
    assert state["enabled"] is False
    assert state["disabled_reason"] == "unsubscribed by the recipient"
    # a witness on the same channel: once it has the next event, the dispatcher has
    # routed that event (a record is written before its delivery is enqueued)
    email_sub(mail_stack, "witness@example.com")
    mail_stack.publish("orders.eu")
    smtp.wait(1, "witness@example.com")
    assert len(mail_stack.deliveries(sub)) == 1
    assert [m.recipients for m in smtp.mails] == [["leaver@example.com"], ["witness@example.com"]]
    assert "no longer receive" in mail_stack.client.get(path).text


def test_huge_data_is_cut_readably_and_attached_whole(mail_stack: Stack, smtp: SmtpServer) -> None:
    email_sub(mail_stack, "big@example.com")
    rows = [{"row": n, "text": "lorem ipsum dolor sit amet"} for n in range(1000)]
    event_id = mail_stack.publish("orders.eu", "report.ready", {"rows": rows})
    [mail] = smtp.wait(1)
    text = mail.text()
    assert len(text) < 12_000
    assert "The data was cut: 10,000 of" in text
    assert f"attached as event-{event_id}.json" in text
    attached = json.loads(mail.attachments()[f"event-{event_id}.json"])
    assert attached["id"] == event_id and attached["data"]["rows"] == rows


def test_header_injection_through_an_event_field_is_neutralised(
    mail_stack_factory: MailStackFactory, smtp: SmtpServer, tmp_path: Path
) -> None:
    (tmp_path / "event.subject").write_text("$summary [$type]\n")
    stack = mail_stack_factory(NOTIFY_EMAIL_TEMPLATES=str(tmp_path))
    email_sub(stack, "target@example.com")
    evil = "Hi\r\nBcc: victim@example.com\r\n\r\nforged body\u2028X-Evil: 1"
    stack.publish("orders.eu", "alert.raised", {"summary": evil})
    [mail] = smtp.wait(1)
    assert mail.recipients == ["target@example.com"]
    assert mail.header("Subject") == (
        "Hi Bcc: victim@example.com forged body X-Evil: 1 [alert.raised]"
    )
    assert "Bcc" not in mail.message and "X-Evil" not in mail.message
    head = mail.raw.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in head and b"\nX-Evil" not in head


def test_invalid_addresses_are_refused_naming_the_field(mail_stack: Stack) -> None:
    for bad in ["not an address", "bob@example.com\r\nBcc: x@example.com", "", 42]:
        r = mail_stack.client.post(
            "/v1/subscriptions",
            json={"channel": "orders.>", "sink": {"kind": "email", "to": bad}},
        )
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["field"] == "sink.to"
    r = mail_stack.client.post(
        "/v1/subscriptions",
        json={
            "channel": "orders.>",
            "sink": {"kind": "email", "to": "a@example.com", "digest_seconds": -1},
        },
    )
    assert r.status_code == 422 and r.json()["field"] == "sink.digest_seconds"


def test_a_broken_template_stops_the_worker_at_start(
    proc_factory: ProcFactory, tmp_path: Path
) -> None:
    (tmp_path / "event.txt").write_text("Hello $recipient_name\n")
    worker = proc_factory("worker", NOTIFY_EMAIL_TEMPLATES=str(tmp_path))
    assert worker.wait(30) == 2
    log = worker.log_text()
    assert "NOTIFY_EMAIL_TEMPLATES" in log
    assert "event.txt: unknown placeholder $recipient_name" in log
