"""kill -9 of a worker during a burst to an email subscription: every event arrives,
and an event mailed twice is mailed with the same Message-ID (at least once, never
as two different messages)."""

from __future__ import annotations

from collections import defaultdict

from tests.integration.mail_stack import MailStackFactory, email_sub
from tests.support.smtp_server import SmtpServer

BURST = 200


def test_kill_a_worker_mid_burst(mail_stack_factory: MailStackFactory, smtp: SmtpServer) -> None:
    stack = mail_stack_factory(workers=2, NOTIFY_DELIVERY_BATCH_SIZE="10")
    sub = email_sub(stack, "burst@example.com")
    worker = stack.procs[1]
    ids = stack.publish_many(
        [{"channel": f"orders.{n % 5}", "type": "order.created", "data": n} for n in range(BURST)]
    )
    stack.wait_for("the burst to be under way", lambda: len(smtp.accepted()) >= BURST // 5)
    worker.kill()
    worker.start()

    stack.wait_status(sub, "delivered", count=BURST, timeout=30)
    mails = smtp.accepted()
    message_ids: dict[str, set[str]] = defaultdict(set)
    for mail in mails:
        message_ids[mail.header("X-Notify-Event")].add(mail.header("Message-ID"))
    assert set(message_ids) == set(ids)
    assert all(len(m) == 1 for m in message_ids.values())
    # a session carries many messages
    assert smtp.sessions < len(mails) // 4
