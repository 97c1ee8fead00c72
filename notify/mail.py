"""Email messages for events and digests (pure: exact bytes, no network).

A message is fully determined by its delivery: the ``Message-ID`` is
``<{delivery id}@{sender domain}>``, the ``Date`` is the (last) event's time and the
MIME boundaries derive from the delivery id, so a retry sends the very same bytes and
a receiver can drop the duplicate by its Message-ID.

Nothing from an event reaches a header unsanitised: every header value has its
control characters (CR, LF, NUL, U+2028 …) replaced by spaces, then is cut to length.
Body parts are quoted-printable, so no line of event data can pass for a MIME
boundary. Messages are built with the ``compat32`` MIME classes: the modern
``EmailMessage`` API re-parses every header it is given and costs four times as much,
which matters at hundreds of messages a second per worker.

Data too long to read in a mail is cut at ``MAX_DATA_CHARS`` (per digest item
``MAX_ITEM_CHARS``) with a note, and the full JSON is attached.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import compat32
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any

import orjson

from notify import templating
from notify.errors import ConfigError
from notify.mailtemplates import SETTING, Templates
from notify.mailtemplates import load as load_templates
from notify.smtpurl import Sender

MAX_SUBJECT = 200
MAX_SUMMARY = 200
MAX_DATA_CHARS = 10_000
MAX_ITEM_CHARS = 2_000
MAX_ITEMS_SHOWN = 100
SUMMARY_KEYS = ("summary", "title", "message")
ONE_CLICK = "List-Unsubscribe=One-Click"
_SPACES = re.compile(r"\s+")
_UTF8 = Charset("utf-8")
_UTF8.header_encoding = QP
_UTF8.body_encoding = QP
# headers are at most ~1000 characters (RFC 5322 allows 998) and are never folded
_POLICY = compat32.clone(linesep="\r\n", max_line_length=998)

SAMPLE_EVENT: dict[str, Any] = {
    "id": "1700000000000-0",
    "channel": "example.channel",
    "type": "example.happened",
    "data": {"summary": "An example", "value": 42},
    "time": "2023-11-14T22:13:20.000Z",
    "origin": "example",
}


@dataclass(frozen=True, slots=True)
class Addressing:
    """What a message says about where it comes from and goes to."""

    sender: Sender
    to: str
    subscription: str
    pattern: str
    unsubscribe_url: str


def header_safe(value: str, limit: int = MAX_SUBJECT) -> str:
    """One line of text: control and separator characters become spaces, runs of
    spaces one, and the result is cut to ``limit`` characters (with an ellipsis)."""
    cleaned = "".join(
        " " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in value
    )
    line = _SPACES.sub(" ", cleaned).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def message_id(delivery_id: str, domain: str) -> str:
    return f"<{header_safe(delivery_id, 128)}@{header_safe(domain, 128)}>"


def summary_of(data: Any) -> str:
    """A one-line summary an event may carry in ``data.summary|title|message``."""
    if isinstance(data, Mapping):
        for key in SUMMARY_KEYS:
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return header_safe(value, MAX_SUMMARY)
    return ""


def render_data(data: Any, limit: int) -> tuple[str, int, bool]:
    """The data as readable text (a string as itself, anything else as indented JSON),
    its full length in characters, and whether it was cut at ``limit``."""
    if data is None:
        text = "(no data)"
    elif isinstance(data, str):
        text = data
    else:
        text = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
    if len(text) <= limit:
        return text, len(text), False
    cut = text[:limit]
    newline = cut.rfind("\n")
    if newline > limit * 0.8:
        cut = cut[:newline]
    return cut + "\n…", len(text), True


def event_fields(event: Mapping[str, Any], limit: int) -> tuple[dict[str, str], int, bool]:
    data, size, cut = render_data(event.get("data"), limit)
    type_, channel = str(event.get("type", "")), str(event.get("channel", ""))
    summary = summary_of(event.get("data"))
    fields = {
        "title": summary or f"{type_} on {channel}",
        "type": type_,
        "channel": channel,
        "time": str(event.get("time", "")),
        "event_id": str(event.get("id", "")),
        "origin": str(event.get("origin") or ""),
        "summary": summary,
        "data": data,
    }
    return fields, size, cut


def escaped(fields: Mapping[str, str]) -> dict[str, str]:
    return {k: html.escape(v) for k, v in fields.items()}


def event_message(
    event: Mapping[str, Any],
    delivery_id: str,
    to: Addressing,
    templates: Templates,
    custom: Mapping[str, str] | None = None,
) -> Message:
    """One event's message; ``custom`` holds a subscription's own Jinja templates
    (``subject``, ``text``, ``html``; any not given keeps the operator's), which raise
    TemplateError when they fail."""
    fields, size, cut = event_fields(event, MAX_DATA_CHARS)
    attachment = f"event-{header_safe(fields['event_id'], 64)}.json"
    note = (
        f"The data was cut: {MAX_DATA_CHARS:,} of {size:,} characters are shown. "
        f"The full event is attached as {attachment}."
        if cut
        else ""
    )
    values = {**fields, "data_note": note, **common(to)}
    custom = custom or {}
    variables = {"event": event, **common(to)}

    def part(name: str, default: str, *, html: bool = False) -> str:
        source = custom.get(name)
        return default if source is None else templating.render(source, variables, html=html)

    msg = body(
        delivery_id,
        part("text", templates["event.txt"].substitute(values)),
        part("html", templates["event.html"].substitute(escaped(values)), html=True),
        (attachment, orjson.dumps(dict(event))) if cut else None,
    )
    headers(
        msg,
        to,
        delivery_id,
        subject=part("subject", templates["event.subject"].substitute(values)),
        date=str(event.get("time", "")),
        extra={"X-Notify-Event": header_safe(fields["event_id"], 64)},
    )
    return msg


def digest_message(
    events: Sequence[Mapping[str, Any]], delivery_id: str, to: Addressing, templates: Templates
) -> Message:
    """One message for a digest window's events, given in order."""
    if not events:
        raise ValueError("a digest holds at least one event")
    texts: list[str] = []
    htmls: list[str] = []
    any_cut = False
    for event in events[:MAX_ITEMS_SHOWN]:
        fields, _, cut = event_fields(event, MAX_ITEM_CHARS)
        any_cut |= cut
        texts.append(templates["digest-item.txt"].substitute(fields))
        htmls.append(templates["digest-item.html"].substitute(escaped(fields)))
    hidden = len(events) - len(texts)
    notes = []
    if hidden:
        notes.append(f"{hidden:,} more events are not shown.")
    if any_cut:
        notes.append(f"Some data was cut to {MAX_ITEM_CHARS:,} characters.")
    if notes:
        notes.append("Every event is attached in full as events.json.")
    values = {
        "count": str(len(events)),
        "first_time": str(events[0].get("time", "")),
        "last_time": str(events[-1].get("time", "")),
        "data_note": " ".join(notes),
        **common(to),
    }
    msg = body(
        delivery_id,
        templates["digest.txt"].substitute(values, events="".join(texts)),
        # the items are HTML already: only the other values are escaped
        templates["digest.html"].substitute(escaped(values), events="".join(htmls)),
        ("events.json", orjson.dumps([dict(e) for e in events])) if notes else None,
    )
    headers(
        msg,
        to,
        delivery_id,
        subject=templates["digest.subject"].substitute(values, events=""),
        date=values["last_time"],
    )
    return msg


def common(to: Addressing) -> dict[str, str]:
    return {
        "subscription": to.subscription,
        "pattern": to.pattern,
        "unsubscribe_url": to.unsubscribe_url,
    }


def headers(
    msg: Message,
    to: Addressing,
    delivery_id: str,
    *,
    subject: str,
    date: str,
    extra: Mapping[str, str] | None = None,
) -> None:
    """Set the headers, before the MIME ones (which move to the end)."""
    mime = [(name, msg[name]) for name in ("MIME-Version", "Content-Type")]
    for name, _ in mime:
        del msg[name]
    name, address = parseaddr(to.sender.header)
    msg["From"] = formataddr((header_safe(name, 200), address), charset=_UTF8)
    msg["To"] = header_safe(to.to, 254)
    subject = header_safe(subject) or "(no subject)"
    # a non-ASCII subject is encoded (RFC 2047); Message accepts a Header at run time
    msg["Subject"] = subject if subject.isascii() else Header(subject, _UTF8)  # type: ignore[assignment]
    msg["Date"] = mail_date(date)
    msg["Message-ID"] = message_id(delivery_id, to.sender.domain)
    msg["List-Unsubscribe"] = f"<{header_safe(to.unsubscribe_url, 900)}>"
    msg["List-Unsubscribe-Post"] = ONE_CLICK
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Notify-Subscription"] = header_safe(to.subscription, 64)
    msg["X-Notify-Delivery"] = header_safe(delivery_id, 64)
    for key, value in (extra or {}).items():
        msg[key] = value
    for key, value in mime:
        msg[key] = value


def text_part(text: str, subtype: str) -> Message:
    part = MIMENonMultipart("text", subtype)
    part.set_payload(text, _UTF8)  # quoted-printable, see _UTF8
    return part


def body(
    delivery_id: str, text: str, html_text: str, attachment: tuple[str, bytes] | None
) -> Message:
    """Text and HTML alternatives, in a mixed part with the attachment if there is one.
    Boundaries derive from the delivery id: ``=_`` never occurs in quoted-printable or
    base64 content, so no content line can be mistaken for one."""
    boundary = f"=_{header_safe(delivery_id, 64)}_"
    alternative = MIMEMultipart("alternative", boundary=boundary + "1")
    alternative.attach(text_part(text, "plain"))
    alternative.attach(text_part(html_text, "html"))
    if attachment is None:
        return alternative
    mixed = MIMEMultipart("mixed", boundary=boundary + "0")
    mixed.attach(alternative)
    filename, content = attachment
    part = MIMEApplication(content, "json")
    part.add_header("Content-Disposition", "attachment", filename=filename)
    mixed.attach(part)
    return mixed


def mail_date(rfc3339: str) -> str:
    try:
        moment = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    except ValueError:
        moment = datetime.fromisoformat(SAMPLE_EVENT["time"].replace("Z", "+00:00"))
    return format_datetime(moment)


def as_bytes(msg: Message) -> bytes:
    return msg.as_bytes(policy=_POLICY)


def prepare_templates(directory: Path | None, sender: Sender) -> Templates:
    """Load the templates and render a sample event and digest with them, so a template
    that cannot render fails here, at start-up, naming the setting."""
    templates = load_templates(directory)
    to = Addressing(sender, "someone@example.com", "sub_example", "example.>", "https://x/u")
    try:
        as_bytes(event_message(SAMPLE_EVENT, "msg_example", to, templates))
        as_bytes(digest_message([SAMPLE_EVENT, SAMPLE_EVENT], "dig_example", to, templates))
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(SETTING, f"templates fail to render a sample event: {exc!r}") from exc
    return templates
