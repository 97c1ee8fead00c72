"""A real SMTP server (aiosmtpd) on a free loopback port, run in a thread.

Tests script its answers per recipient (``"451 4.3.0 Try again later"`` once, say)
and read every message it was sent, parsed, including the ones it refused, with the
SMTP session each came over. ``drop_sessions()`` has it close the sessions that have
sent mail so far when their client next uses them.
"""

from __future__ import annotations

import asyncio
import email
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.ports import free_port

OK = "250 2.0.0 OK: queued"


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    raw: bytes
    message: EmailMessage
    answer: str
    session: int
    at: float

    @property
    def accepted(self) -> bool:
        return self.answer.startswith("2")

    def header(self, name: str) -> str:
        return str(self.message[name] or "")

    def text(self) -> str:
        part = self.message.get_body(("plain",))
        return str(part.get_content()).replace("\r\n", "\n") if part else ""

    def html(self) -> str:
        part = self.message.get_body(("html",))
        return str(part.get_content()).replace("\r\n", "\n") if part else ""

    def attachments(self) -> dict[str, bytes]:
        return {
            str(p.get_filename()): bytes(p.get_content()) for p in self.message.iter_attachments()
        }


@dataclass(frozen=True)
class Login:
    accepted: bool
    user: str
    mechanism: str
    session: int  # the n-th SMTP session that tried to log in, from 0


class Handler:
    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self._server.received_data(session, envelope)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self._server.dropping(session):
            # closed as the command arrives, unanswered; aiosmtpd cancels this wait when
            # it learns that the connection is gone
            server.transport.close()
            await asyncio.Event().wait()
        # what aiosmtpd does itself when a handler has no handle_MAIL
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


class SmtpServer:
    def __init__(self, *, refused_sessions: int | None = None) -> None:
        """``refused_sessions``: offer AUTH PLAIN and LOGIN (without TLS), as mail
        relays do, and refuse every login (535) of that many SMTP sessions, then accept
        any; None: no AUTH."""
        self.port = free_port()
        self.mails: list[Mail] = []
        self.scripts: dict[str, deque[str]] = defaultdict(deque)
        self._sessions: dict[int, int] = {}
        self._lock = threading.Lock()
        self.logins: list[Login] = []
        self._login_sessions: list[Any] = []  # held, so that no id is ever reused
        # every session that sent MAIL, held so that no id is ever reused (``Mail.session``
        # numbers the sessions by id), and those to close at their next MAIL
        self._mailing: list[Any] = []
        self._doomed: list[Any] = []
        self.dropped = 0  # sessions closed by drop_sessions() at their next MAIL
        self._refuse = refused_sessions
        auth: dict[str, Any] = {}
        if refused_sessions is not None:
            auth = {"auth_require_tls": False, "authenticator": self._authenticate}
        self._controller = Controller(Handler(self), hostname="127.0.0.1", port=self.port, **auth)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        with self._lock:
            if not any(s is session for s in self._login_sessions):
                self._login_sessions.append(session)
            number = next(n for n, s in enumerate(self._login_sessions) if s is session)
            ok = number >= (self._refuse or 0)
            user = data.login.decode() if isinstance(data, LoginPassword) else "?"
            self.logins.append(Login(ok, user, mechanism, number))
        # handled=False: aiosmtpd sends the refusal (535) itself; True would mean this
        # function had already answered, and the client would wait for a reply forever
        return AuthResult(success=ok, handled=False)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?starttls=false"

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def drop_sessions(self) -> int:
        """Close each session that has sent MAIL so far when its client next sends MAIL,
        without answering it: the client sees the close only once it uses the session
        again, as when a server closes an idle session just as the client reuses it.
        Returns how many sessions are to be closed."""
        with self._lock:
            self._doomed = list(self._mailing)
            return len(self._doomed)

    def dropping(self, session: Any) -> bool:
        """Whether this session's MAIL is to be met by closing the connection."""
        with self._lock:
            if any(s is session for s in self._doomed):
                self.dropped += 1
                return True
            if not any(s is session for s in self._mailing):
                self._mailing.append(session)
            return False

    def answer(self, recipient: str, *answers: str) -> None:
        """Answer the next DATA commands for ``recipient`` with these replies, then 250."""
        with self._lock:
            self.scripts[recipient.lower()].extend(answers)

    def received_data(self, session: Any, envelope: Any) -> str:
        raw = bytes(envelope.content)
        recipients = [str(r) for r in envelope.rcpt_tos]
        with self._lock:
            script = self.scripts[recipients[0].lower()] if recipients else deque()
            answer = script.popleft() if script else OK
            number = self._sessions.setdefault(id(session), len(self._sessions))
            parsed = email.message_from_bytes(raw, policy=default_policy)
            assert isinstance(parsed, EmailMessage)
            self.mails.append(
                Mail(str(envelope.mail_from), recipients, raw, parsed, answer, number, time.time())
            )
        return answer

    @property
    def sessions(self) -> int:
        with self._lock:
            return len(self._sessions)

    def accepted(self, recipient: str | None = None) -> list[Mail]:
        with self._lock:
            return [
                m
                for m in self.mails
                if m.accepted and (recipient is None or recipient.lower() in m.recipients)
            ]

    def wait(self, count: int, recipient: str | None = None, timeout: float = 15.0) -> list[Mail]:
        """At least ``count`` accepted mails (to ``recipient``); fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.accepted(recipient)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(
            f"{len(self.accepted(recipient))} of {count} mails arrived in {timeout} s"
        )
