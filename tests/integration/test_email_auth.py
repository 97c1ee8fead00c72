"""An SMTP login the server refuses (535) is retried, not failed for good: fixing the
account is the operator's job and the mail must still go once it is fixed. Each refused
attempt is recorded as the server's refusal, not as a time-out. Real aiosmtpd server
offering AUTH PLAIN and LOGIN that refuses the logins of its first two sessions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import StackFactory
from tests.integration.mail_stack import FROM, PUBLIC_URL, email_sub
from tests.support.smtp_server import SmtpServer

REFUSED = "SMTP 535 5.7.8 Authentication credentials invalid"


@pytest.fixture
def strict_smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(refused_sessions=2).start()
    try:
        yield server
    finally:
        server.stop()


def test_a_refused_login_is_recorded_as_refused_and_retried_until_it_succeeds(
    stack_factory: StackFactory, strict_smtp: SmtpServer, jwt_secret: str
) -> None:
    stack = stack_factory(
        NOTIFY_SMTP_URL=f"smtp://mailer:pw@127.0.0.1:{strict_smtp.port}?starttls=false",
        NOTIFY_EMAIL_FROM=FROM,
        NOTIFY_PUBLIC_URL=PUBLIC_URL,
        NOTIFY_JWT_SECRET=jwt_secret,
        NOTIFY_RETRY_SCHEDULE="0.2,0.2,0.2,0.2",
    )
    sub = email_sub(stack, "ops@example.com")
    stack.publish("orders.eu", data={"n": 1})
    [mail] = strict_smtp.wait(1, timeout=40)  # a Celery worker starts slowly
    assert mail.accepted
    [record] = stack.wait_status(sub, "delivered")
    attempts = record["attempts"]
    assert [a["outcome"] for a in attempts] == ["retry", "retry", "delivered"], attempts
    for refused in attempts[:2]:
        # the server's answer, not "SMTP timed out after 1 s" (the time-out of this stack)
        assert refused["error"] == REFUSED and refused["status_code"] == 535, refused
    # the client tries each mechanism the server offers before giving up on a session
    assert [(x.session, x.mechanism, x.accepted) for x in strict_smtp.logins] == [
        (0, "PLAIN", False),
        (0, "LOGIN", False),
        (1, "PLAIN", False),
        (1, "LOGIN", False),
        (2, "PLAIN", True),
    ]
    assert {x.user for x in strict_smtp.logins} == {"mailer"}
