"""A subscription's own email templates, end to end through a real SMTP server."""

from __future__ import annotations

from tests.integration.delivery_stack import Stack
from tests.integration.mail_stack import email_sub
from tests.support.smtp_server import SmtpServer

WAIT = 40.0  # the first delivery waits for a worker to start, slow on a loaded machine


def test_own_templates_render_and_a_failing_one_fails_its_delivery(
    mail_stack: Stack, smtp: SmtpServer
) -> None:
    template = {
        "subject": "[{{ event.channel }}] order {{ event.data.order }}",
        "html": "<p>{{ event.data.note }}</p>",
    }
    good = email_sub(mail_stack, "t@example.com", template=template)
    bad = email_sub(mail_stack, "b@example.com", template={"text": "{{ event.data.x.y }}"})
    mail_stack.publish("orders.eu", "order.created", {"order": 17, "note": "<b>bold</b>"})
    [mail] = smtp.wait(1, "t@example.com", timeout=WAIT)
    assert mail.header("Subject") == "[orders.eu] order 17"
    assert mail.html().strip() == "<p>&lt;b&gt;bold&lt;/b&gt;</p>"
    assert mail.text().startswith("order.created on orders.eu\n")  # the operator's default
    mail_stack.wait_status(good, "delivered", timeout=WAIT)
    [failed] = mail_stack.wait_status(bad, "failed", timeout=WAIT)
    assert failed["attempts"][-1]["error"] == "template: line 1: 'dict object' has no attribute 'x'"
    assert [m for m in smtp.mails if "b@example.com" in m.recipients] == []
