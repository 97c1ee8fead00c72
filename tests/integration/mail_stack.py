"""Fixtures for the email and monitoring sinks: a real SMTP server, a real
Alertmanager, and delivery stacks wired to them. Test modules import the fixtures
they use from here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.integration.delivery_stack import Stack
from tests.support.alertmanager import Alertmanager
from tests.support.smtp_server import Mail, SmtpServer

FROM = "Notify <notify@notify.test>"
PUBLIC_URL = "http://notify.test"
StackFactory = Callable[..., Stack]
MailStackFactory = Callable[..., Stack]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mail_stack_factory(
    stack_factory: StackFactory, smtp: SmtpServer, jwt_secret: str
) -> MailStackFactory:
    """``mail_stack_factory(workers=1, **env)``: a delivery stack mailing to ``smtp``."""

    def make(workers: int = 1, **env: object) -> Stack:
        return stack_factory(
            workers,
            NOTIFY_SMTP_URL=smtp.url,
            NOTIFY_EMAIL_FROM=FROM,
            NOTIFY_PUBLIC_URL=PUBLIC_URL,
            NOTIFY_JWT_SECRET=jwt_secret,
            NOTIFY_RETRY_SCHEDULE="0.2,0.2",
            **env,
        )

    return make


@pytest.fixture
def mail_stack(mail_stack_factory: MailStackFactory) -> Stack:
    return mail_stack_factory()


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    server = Alertmanager(tmp_path, resolve_timeout="3s").start()
    try:
        yield server
    finally:
        server.stop()


def email_sub(stack: Stack, to: str, channel: str = "orders.>", **sink: object) -> str:
    sub = stack.subscribe(channel, {"kind": "email", "to": to, **sink})
    return str(sub["id"])


def unsubscribe_path(mail: Mail) -> str:
    """The path of the message's List-Unsubscribe URL (its origin is PUBLIC_URL)."""
    link = mail.header("List-Unsubscribe").strip("<>")
    assert link.startswith(PUBLIC_URL + "/v1/unsubscribe/sub_"), link
    return urlsplit(link).path
