"""The SMTP relay URL and the sender address, parsed and checked (pure).

``smtp://[user:password@]host[:port][?starttls=false]`` speaks plain SMTP and
*requires* STARTTLS unless ``starttls=false``; ``smtps://`` speaks TLS from the first
byte. Default ports: 25 for smtp, 465 for smtps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import parseaddr
from urllib.parse import parse_qsl, unquote, urlsplit

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Sender:
    header: str  # the From header, e.g. "Alerts <alerts@example.com>"
    address: str  # the envelope sender (MAIL FROM)
    domain: str  # the right-hand side of Message-IDs


def shown(url: str) -> str:
    """The URL as it may be printed: its password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{hostport}").geturl()


def parse_smtp_url(url: str) -> SmtpTarget:
    """Raise ValueError with a readable reason when the URL is not usable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError("must not have a path or fragment")
    implicit = parts.scheme == "smtps"
    starttls = not implicit
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key != "starttls":
            raise ValueError(f"unknown option {key!r} (only starttls=true|false)")
        if implicit:
            raise ValueError("starttls applies to smtp:// only (smtps:// is TLS throughout)")
        if value.lower() in _FALSE:
            starttls = False
        elif value.lower() not in _TRUE:
            raise ValueError("starttls must be true or false")
    return SmtpTarget(
        host=parts.hostname,
        port=port or (465 if implicit else 25),
        implicit_tls=implicit,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def parse_sender(value: str) -> Sender:
    """``addr@domain`` or ``Name <addr@domain>``; raise ValueError otherwise."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError("must not contain line breaks")
    _, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in address):
        raise ValueError("must be an email address, optionally with a name: Name <a@example.com>")
    return Sender(header=value.strip(), address=address, domain=domain.lower())
