"""The email sink's SMTP sessions against real servers (aiosmtpd, plain TCP listeners):
a reused session the server has closed is replaced within the same attempt; a server
that never answers, a refused connection and a certificate the worker does not trust
at STARTTLS are each recorded for what they are and retried on the schedule."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink

from tests.integration.conftest import StackFactory
from tests.integration.delivery_stack import Stack
from tests.integration.mail_stack import FROM, PUBLIC_URL, MailStackFactory, email_sub
from tests.support.ports import free_port
from tests.support.smtp_server import SmtpServer
from tests.support.tls import make_certificates


class LateServer:
    """An SMTP server whose port is chosen but not listened on until ``start()``."""

    def __init__(self) -> None:
        self.server = SmtpServer()
        self.started = False

    def start(self) -> None:
        self.server.start()
        self.started = True


@pytest.fixture
def late() -> Iterator[LateServer]:
    late = LateServer()
    try:
        yield late
    finally:
        if late.started:
            late.server.stop()


def email_stack(stack_factory: StackFactory, jwt_secret: str, url: str, schedule: str) -> Stack:
    """A delivery stack mailing to ``url`` with a one-second SMTP deadline."""
    return stack_factory(
        NOTIFY_SMTP_URL=url,
        NOTIFY_EMAIL_FROM=FROM,
        NOTIFY_PUBLIC_URL=PUBLIC_URL,
        NOTIFY_JWT_SECRET=jwt_secret,
        NOTIFY_SMTP_TIMEOUT_SECONDS="1",
        NOTIFY_RETRY_SCHEDULE=schedule,
    )


def first_attempt(stack: Stack, sub: str) -> dict[str, Any]:
    """The first attempt recorded for the subscription's one delivery, once there is one."""

    def check() -> dict[str, Any] | None:
        records = stack.deliveries(sub)
        return records[0]["attempts"][0] if records and records[0]["attempts"] else None

    attempt: dict[str, Any] = stack.wait_for("a first attempt", check)
    return attempt


def test_a_reused_session_the_server_has_closed_is_replaced_within_the_attempt(
    mail_stack_factory: MailStackFactory, smtp: SmtpServer
) -> None:
    # one pool process, so that the second delivery goes out where the first session idles
    stack = mail_stack_factory(workers=0)
    stack.wait_ready(stack.worker(concurrency=1))
    sub = email_sub(stack, "idle@example.com")
    stack.publish("orders.eu", data={"n": 1})
    [first] = smtp.wait(1)
    stack.wait_status(sub, "delivered")
    assert smtp.drop_sessions() == 1  # the session of the first mail, idle in the pool
    second_id = stack.publish("orders.eu", data={"n": 2})
    records = stack.wait_events(sub, "delivered", [second_id])
    [record] = [r for r in records if r["event_id"] == second_id]
    mails = smtp.wait(2)
    assert [m.accepted for m in mails] == [True, True]
    # the worker sent over the idle session, which the server closed unanswered ...
    assert smtp.dropped == 1
    # ... and sent again over a new session in the same attempt
    assert [a["outcome"] for a in record["attempts"]] == ["delivered"], record["attempts"]
    assert record["attempts"][0]["status_code"] == 250
    second = mails[1]
    assert second.header("X-Notify-Event") == second_id
    assert second.session != first.session


def test_a_server_that_never_answers_times_the_attempt_out_and_the_retry_delivers(
    stack_factory: StackFactory, late: LateServer, jwt_secret: str
) -> None:
    # on the SMTP server's port first: a listener that never accepts, so each connection
    # is completed by the kernel and then never greeted
    hung = socket.create_server(("127.0.0.1", late.server.port), backlog=16)
    try:
        stack = email_stack(stack_factory, jwt_secret, late.server.url, "1.5,1.5")
        sub = email_sub(stack, "slow@example.com")
        stack.publish("orders.eu")
        timed_out = first_attempt(stack, sub)
    finally:
        hung.close()
    late.start()
    assert timed_out["outcome"] == "retry", timed_out
    assert timed_out["error"] == "SMTP timed out after 1 s", timed_out
    assert "status_code" not in timed_out
    assert timed_out["duration_ms"] >= 900  # it waited out the deadline
    [mail] = late.server.wait(1)
    [record] = stack.wait_status(sub, "delivered")
    assert [a["outcome"] for a in record["attempts"]] == ["retry", "delivered"], record
    assert mail.header("Message-ID") == f"<{record['id']}@notify.test>"


def test_a_refused_connection_is_retried_until_the_server_is_up(
    stack_factory: StackFactory, late: LateServer, jwt_secret: str
) -> None:
    stack = email_stack(stack_factory, jwt_secret, late.server.url, "1.5,1.5")
    sub = email_sub(stack, "early@example.com")
    stack.publish("orders.eu")
    refused = first_attempt(stack, sub)
    late.start()
    assert refused["outcome"] == "retry", refused
    # aiosmtplib reports a refused connection as an SMTPConnectError (an SMTP error
    # without a reply code, not a bare OSError); the record leaves the address out
    assert refused["error"] == (
        f"SMTP: SMTPConnectError: Error connecting to <address> on port {late.server.port}: "
        "[Errno 111] Connection refused"
    ), refused
    assert "status_code" not in refused
    late.server.wait(1)
    [record] = stack.wait_status(sub, "delivered")
    assert [a["outcome"] for a in record["attempts"]] == ["retry", "delivered"], record


def test_a_certificate_not_trusted_at_starttls_is_a_connection_failure_retried_then_failed(
    stack_factory: StackFactory, jwt_secret: str, tmp_path: Path
) -> None:
    certs = make_certificates(tmp_path / "certs")  # signed by a CA the worker does not know
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert, certs.key)
    port = free_port()
    server = Controller(
        Sink(), hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
    )
    server.start()
    try:
        # no ?starttls=false: STARTTLS is required
        stack = email_stack(stack_factory, jwt_secret, f"smtp://127.0.0.1:{port}", "0.2,0.2")
        sub = email_sub(stack, "tls@example.com")
        stack.publish("orders.eu")
        [record] = stack.wait_status(sub, "failed")
    finally:
        server.stop()
    attempts = record["attempts"]
    assert [a["outcome"] for a in attempts] == ["retry", "retry", "failed"], attempts
    for attempt in attempts:
        assert attempt["error"].startswith(
            "SMTP connection failed: [SSL: CERTIFICATE_VERIFY_FAILED]"
        ), attempt
        assert "status_code" not in attempt
