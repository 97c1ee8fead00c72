"""An SMTP login the server refuses (535) is retried, not failed for good: fixing the
account is the operator's job and the mail must still go once it is fixed. Real
aiosmtpd server with AUTH that refuses the first two logins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import StackFactory
from tests.integration.mail_stack import FROM, PUBLIC_URL, email_sub
from tests.support.smtp_server import SmtpServer


@pytest.fixture
def strict_smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(refused_logins=2).start()
    try:
        yield server
    finally:
        server.stop()


def test_a_refused_login_is_retried_until_it_succeeds(
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
    # the refused attempts are recorded as "SMTP timed out", not as the 535: a defect of
    # the sink to mend (it is retried either way, which is what this test is about)
    assert [ok for ok, _ in strict_smtp.logins] == [False, False, True]
    assert {user for _, user in strict_smtp.logins} == {"mailer"}
