"""The email sink: messages over SMTP (aiosmtplib) to the relay in NOTIFY_SMTP_URL.

Each worker process keeps a small pool of SMTP sessions (NOTIFY_SMTP_MAX_CONNECTIONS):
a batch's messages go out over them one after another, so one connection carries many
messages. A session that saw any error is closed, never reused; an idle one is dropped
after IDLE_SECONDS, and a reused one the server has meanwhile closed is replaced once
within the same attempt. One deadline covers the whole attempt: waiting for a session,
connecting (with the required STARTTLS) and sending.

Replies: 2xx delivered (the server's answer is recorded), 4xx and network failures
retry, 5xx fails with the reply recorded. Authentication failures retry whatever their
code: they are the operator's to fix, not the recipient's.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import aiosmtplib
import orjson

from notify import mail
from notify.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from notify.mailtemplates import Templates
from notify.redis.digests import DigestStore, digest_id, is_digest
from notify.sinks.base import RESPONSE_EXCERPT, Job, Receipt
from notify.smtpurl import Sender, SmtpTarget
from notify.subscriptions import Subscription
from notify.templating import TemplateError
from notify.unsubscribe import url as unsubscribe_url

IDLE_SECONDS = 30.0


class SmtpPool:
    def __init__(self, target: SmtpTarget, *, timeout: float, size: int) -> None:
        self._target = target
        self._timeout = timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._local_hostname = socket.gethostname() or "localhost"
        self.opened = 0  # sessions opened in this process, for tests and logs

    async def send(self, sender: str, recipient: str, message: bytes) -> str:
        """Send one message; the server's final reply, or a DeliveryError."""
        try:
            async with asyncio.timeout(self._timeout), self._slots:
                return await self._send(sender, recipient, message)
        except TimeoutError as exc:
            raise TransientDeliveryError(f"SMTP timed out after {self._timeout:g} s") from exc
        except aiosmtplib.SMTPException as exc:
            raise translate(exc) from exc
        except OSError as exc:
            raise TransientDeliveryError(f"SMTP connection failed: {exc}"[:200]) from exc

    async def _send(self, sender: str, recipient: str, message: bytes) -> str:
        session, reused = self._take(), True
        if session is None:
            session, reused = await self._connect(), False
        try:
            try:
                _, reply = await session.sendmail(sender, [recipient], message)
            except aiosmtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # the server closed an idle session: one fresh try, same attempt
                session.close()
                session = await self._connect()
                _, reply = await session.sendmail(sender, [recipient], message)
        except BaseException:
            session.close()
            raise
        self._idle.append((session, time.monotonic()))
        return reply

    def _take(self) -> aiosmtplib.SMTP | None:
        now = time.monotonic()
        while self._idle:
            session, since = self._idle.pop()
            if session.is_connected and now - since < IDLE_SECONDS:
                return session
            session.close()
        return None

    async def _connect(self) -> aiosmtplib.SMTP:
        t = self._target
        session = aiosmtplib.SMTP(
            hostname=t.host,
            port=t.port,
            username=t.username,
            password=t.password,
            use_tls=t.implicit_tls,
            # True, not None: aiosmtplib would otherwise send in clear text to a
            # server that does not offer STARTTLS
            start_tls=t.starttls,
            timeout=self._timeout,
            local_hostname=self._local_hostname,
        )
        try:
            await session.connect()
        except BaseException:
            session.close()
            raise
        self.opened += 1
        return session

    async def aclose(self) -> None:
        while self._idle:
            session, _ = self._idle.pop()
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                async with asyncio.timeout(2):
                    await session.quit()
            session.close()


def translate(exc: aiosmtplib.SMTPException) -> DeliveryError:
    """An SMTP failure as a delivery error: 5xx permanent, the rest transient."""
    code: int | None = None
    reply = str(exc)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        code, reply = exc.recipients[0].code, exc.recipients[0].message
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        code, reply = exc.code, exc.message
    if code is None:
        return TransientDeliveryError(f"SMTP: {type(exc).__name__}: {reply}"[:RESPONSE_EXCERPT])
    detail = f"SMTP {code} {reply}"[:RESPONSE_EXCERPT]
    if 500 <= code < 600 and not isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return PermanentDeliveryError(detail, status_code=code)
    return TransientDeliveryError(detail, status_code=code)


class EmailSink:
    kind = "email"

    def __init__(
        self,
        *,
        pool: SmtpPool,
        sender: Sender,
        templates: Templates,
        public_url: str,
        unsubscribe_key: bytes,
        digests: DigestStore,
        digest_max_events: int,
    ) -> None:
        self._pool = pool
        self._sender = sender
        self._templates = templates
        self._public_url = public_url
        self._key = unsubscribe_key
        self._digests = digests
        self._digest_max_events = digest_max_events

    def target(self, job: Job) -> str | None:
        return None  # one relay of our own: no per-target budget

    def addressing(self, sub: Subscription) -> mail.Addressing:
        to = str(sub.sink["to"])
        link = unsubscribe_url(self._public_url, self._key, sub.id, to)
        return mail.Addressing(self._sender, to, sub.id, sub.channel, link)

    async def deliver(self, job: Job) -> Receipt:
        sub = job.subscription
        if is_digest(job.delivery_id):
            events = orjson.loads(job.event)
            events.sort(key=lambda e: tuple(int(p) for p in str(e["id"]).split("-")))
            msg = mail.digest_message(
                events, job.delivery_id, self.addressing(sub), self._templates
            )
        elif int(sub.sink.get("digest_seconds") or 0) > 0:
            return await self._collect(job)
        else:
            event = orjson.loads(job.event)
            try:
                msg = mail.event_message(
                    event,
                    job.delivery_id,
                    self.addressing(sub),
                    self._templates,
                    sub.sink.get("template"),
                )
            except TemplateError as exc:
                raise PermanentDeliveryError(f"template: {exc}"[:RESPONSE_EXCERPT]) from exc
        reply = await self._pool.send(self._sender.address, str(sub.sink["to"]), mail.as_bytes(msg))
        return Receipt(250, reply[:RESPONSE_EXCERPT] or None)

    async def _collect(self, job: Job) -> Receipt:
        event_id = str(orjson.loads(job.event)["id"])
        opened = await self._digests.append(
            job.delivery_id, job.subscription, event_id, job.event, self._digest_max_events
        )
        if opened is None:
            raise PermanentDeliveryError("the delivery record is gone")
        return Receipt(None, f"in digest {digest_id(job.subscription.id, opened)}")

    async def aclose(self) -> None:
        await self._pool.aclose()


def build(
    *,
    target: SmtpTarget,
    sender: Sender,
    templates_dir: Path | None,
    public_url: str,
    unsubscribe_key: bytes,
    digests: DigestStore,
    timeout: float,
    max_connections: int,
    digest_max_events: int,
) -> EmailSink:
    return EmailSink(
        pool=SmtpPool(target, timeout=timeout, size=max_connections),
        sender=sender,
        templates=mail.prepare_templates(templates_dir, sender),
        public_url=public_url,
        unsubscribe_key=unsubscribe_key,
        digests=digests,
        digest_max_events=digest_max_events,
    )
