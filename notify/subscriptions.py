"""Subscriptions: the model, sink configurations and their validation (pure).

A subscription says: events on channels matching ``channel``, of types matching
``types`` (empty = all), published after the subscription was created, go to ``sink``.
Validation errors name the offending field (``sink.url``, ``types[2]``).
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import orjson
from email_validator import EmailNotValidError, validate_email

from notify import ssrf, templating, webhooks
from notify.channels import STAR, TAIL, matches, validate_pattern
from notify.errors import Findings, InvalidInput
from notify.formats import CHAT, FORMATS

KINDS = ("web", "email", "webhook", "monitoring")
SIGNATURES = ("v1", "v1a")
MAX_TYPES = 32
MAX_URL = 2048
MAX_DIGEST_SECONDS = 86400
ROTATION_OVERLAP_SECONDS = 86400
_TYPE_SEGMENT = re.compile(r"[A-Za-z0-9_:\-]{1,128}")
_SINK_FIELDS: dict[str, frozenset[str]] = {
    "web": frozenset({"kind"}),
    "email": frozenset({"kind", "to", "digest_seconds", "template"}),
    "webhook": frozenset({"kind", "url", "format", "template", "signature"}),
    "monitoring": frozenset({"kind", "url"}),
}
CREATE_FIELDS = frozenset({"channel", "types", "sink", "user"})
PATCH_FIELDS = frozenset({"channel", "types", "sink", "enabled"})


@dataclass(frozen=True, slots=True)
class Secret:
    value: str
    expires_at: float | None = None  # Unix seconds; None for the current secret


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    user: str
    channel: str
    types: tuple[str, ...]
    sink: Mapping[str, Any]
    since_ms: int  # events whose id time is at or after this are routed to it
    created_at: str
    updated_at: str
    enabled: bool = True
    disabled_reason: str | None = None
    secrets: tuple[Secret, ...] = field(default=(), repr=False)

    @property
    def kind(self) -> str:
        return str(self.sink["kind"])

    def wants(self, event_type: str) -> bool:
        return not self.types or any(matches(p, event_type) for p in self.types)

    def signing_secrets(self, now: float) -> list[str]:
        return [s.value for s in self.secrets if s.expires_at is None or s.expires_at > now]

    def rotated(self, new: str, now: float) -> Subscription:
        kept = [
            Secret(
                s.value, now + ROTATION_OVERLAP_SECONDS if s.expires_at is None else s.expires_at
            )
            for s in self.secrets
            if s.expires_at is None or s.expires_at > now
        ]
        return replace(self, secrets=(Secret(new), *kept))

    def public(self) -> dict[str, Any]:
        """The API view: never holds a secret (an Ed25519 public key is no secret)."""
        view = {
            "id": self.id,
            "user": self.user,
            "channel": self.channel,
            "types": list(self.types),
            "sink": dict(self.sink),
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        keys = [s.value for s in self.secrets if webhooks.is_signing_key(s.value)]
        if keys:
            view["public_key"] = webhooks.public_key(keys[0])
        return view

    def dumps(self) -> bytes:
        stored = self.public()
        stored["since_ms"] = self.since_ms
        stored["secrets"] = [[s.value, s.expires_at] for s in self.secrets]
        return orjson.dumps(stored)

    @classmethod
    def loads(cls, raw: bytes | str) -> Subscription:
        value = orjson.loads(raw)
        return cls(
            id=value["id"],
            user=value["user"],
            channel=value["channel"],
            types=tuple(value["types"]),
            sink=value["sink"],
            since_ms=int(value["since_ms"]),
            created_at=value["created_at"],
            updated_at=value["updated_at"],
            enabled=bool(value["enabled"]),
            disabled_reason=value.get("disabled_reason"),
            secrets=tuple(Secret(v, e) for v, e in value.get("secrets", [])),
        )


def new_id() -> str:
    # lowercase base32 keeps ids URL- and channel-segment-safe
    return "sub_" + base64.b32encode(secrets.token_bytes(15)).decode().lower()


@dataclass(frozen=True, slots=True)
class Draft:
    """A validated creation request."""

    channel: str
    types: tuple[str, ...]
    sink: dict[str, Any]
    user: str | None


@dataclass(frozen=True, slots=True)
class Patch:
    channel: str | None = None
    types: tuple[str, ...] | None = None
    sink: dict[str, Any] | None = None
    enabled: bool | None = None


def _require_object(raw: object, name: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{name} must be a JSON object", field=name)
    return raw


def _reject_unknown(raw: Mapping[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    found = Findings()
    for name in sorted(set(raw) - allowed):
        found.add(InvalidInput(f"unknown field {name!r}", field=prefix + str(name)))
    found.raise_any()


def parse_create(
    raw: object, *, allow_private: bool, allowed: ssrf.AllowList = ssrf.NOTHING
) -> Draft:
    body = _require_object(raw, "body")
    found = Findings()  # every bad field is named, not just the first
    found.attempt(_reject_unknown, body, CREATE_FIELDS)
    channel = types = sink = None
    if "channel" not in body:
        found.add(InvalidInput("channel is required", field="channel"))
    else:
        channel = found.attempt(validate_pattern, body["channel"], field="channel")
    types = found.attempt(validate_types, body.get("types"))
    if "sink" not in body:
        found.add(InvalidInput("sink is required", field="sink"))
    else:
        sink = found.attempt(
            validate_sink, body["sink"], allow_private=allow_private, allowed=allowed
        )
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        found.add(InvalidInput("user must be a string", field="user"))
    found.raise_any()
    assert channel is not None and types is not None and sink is not None
    return Draft(channel=channel, types=types, sink=sink, user=user)


def parse_patch(
    raw: object, *, allow_private: bool, allowed: ssrf.AllowList = ssrf.NOTHING
) -> Patch:
    body = _require_object(raw, "body")
    found = Findings()
    found.attempt(_reject_unknown, body, PATCH_FIELDS)
    enabled = body.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        found.add(InvalidInput("enabled must be true or false", field="enabled"))
    channel = types = sink = None
    if "channel" in body:
        channel = found.attempt(validate_pattern, body["channel"], field="channel")
    if "types" in body:
        types = found.attempt(validate_types, body["types"])
    if "sink" in body:
        sink = found.attempt(
            validate_sink, body["sink"], allow_private=allow_private, allowed=allowed
        )
    found.raise_any()
    return Patch(channel=channel, types=types, sink=sink, enabled=enabled)


def validate_types(raw: object, name: str = "types") -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidInput("types must be a list of type patterns", field=name)
    if len(raw) > MAX_TYPES:
        raise InvalidInput(f"at most {MAX_TYPES} type patterns", field=name)
    return tuple(dict.fromkeys(validate_type_pattern(v, f"{name}[{i}]") for i, v in enumerate(raw)))


def validate_type_pattern(raw: object, name: str) -> str:
    problem = "a type pattern is 1-128 characters of dot-separated [A-Za-z0-9_:-], '*' or '>'"
    if not isinstance(raw, str) or not 0 < len(raw) <= 128:
        raise InvalidInput(problem, field=name)
    segments = raw.split(".")
    for i, seg in enumerate(segments):
        if seg == STAR or (seg == TAIL and i == len(segments) - 1):
            continue
        if not _TYPE_SEGMENT.fullmatch(seg):
            raise InvalidInput(problem, field=name)
    return raw


def whole(value: object) -> object:
    """A JSON number with a zero fraction (``30.0``) as the integer it is (an integer to
    JSON Schema too); anything else unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def validate_sink(
    raw: object,
    *,
    allow_private: bool,
    name: str = "sink",
    allowed: ssrf.AllowList = ssrf.NOTHING,
) -> dict[str, Any]:
    sink = _require_object(raw, name)
    kind = sink.get("kind")
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field=f"{name}.kind")
    _reject_unknown(sink, _SINK_FIELDS[kind], prefix=f"{name}.")
    if kind == "web":
        return {"kind": "web"}
    if kind == "email":
        digest = whole(sink.get("digest_seconds", 0))
        if (
            not isinstance(digest, int)
            or isinstance(digest, bool)
            or not 0 <= digest <= MAX_DIGEST_SECONDS
        ):
            raise InvalidInput(
                f"digest_seconds must be an integer from 0 to {MAX_DIGEST_SECONDS}",
                field=f"{name}.digest_seconds",
            )
        email = {
            "kind": "email",
            "to": validate_address(sink.get("to"), f"{name}.to"),
            "digest_seconds": digest,
        }
        if sink.get("template") is not None:
            email["template"] = validate_email_template(sink["template"], f"{name}.template")
        return email
    url = validate_url(sink.get("url"), f"{name}.url", allow_private=allow_private, allowed=allowed)
    if kind == "monitoring":
        return {"kind": kind, "url": url}
    signature = sink.get("signature", "v1")
    if signature not in SIGNATURES:
        raise InvalidInput(
            "signature must be v1 (HMAC-SHA256) or v1a (Ed25519)", field=f"{name}.signature"
        )
    extra = {"signature": "v1a"} if signature == "v1a" else {}
    return {"kind": kind, "url": url, **validate_format(sink, name), **extra}


def validate_format(sink: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A webhook's ``format`` and ``template``: stored only when not the default, so a
    plain webhook keeps its plain shape."""
    fmt = sink.get("format", "standard")
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}", field=f"{name}.format")
    template = sink.get("template")
    if fmt == "template" and template is None:
        raise InvalidInput('format "template" needs a template', field=f"{name}.template")
    if template is not None and fmt not in CHAT | {"template"}:
        raise InvalidInput(
            f"a template is used by the formats template, {', '.join(sorted(CHAT))}",
            field=f"{name}.template",
        )
    out: dict[str, Any] = {} if fmt == "standard" else {"format": fmt}
    if template is not None:
        out["template"] = validate_template(template, f"{name}.template")
    return out


def validate_template(raw: object, name: str, *, html: bool = False) -> str:
    if not isinstance(raw, str) or not raw:
        raise InvalidInput("a template is a non-empty string", field=name)
    try:
        templating.check(raw, html)
    except templating.TemplateError as exc:
        raise InvalidInput(f"template error: {exc}", field=name) from exc
    return raw


EMAIL_TEMPLATE_PARTS = ("subject", "text", "html")


def validate_email_template(raw: object, name: str) -> dict[str, str]:
    """``{"subject","text","html"}``, each optional: a part not given keeps the default."""
    parts = _require_object(raw, name)
    _reject_unknown(parts, frozenset(EMAIL_TEMPLATE_PARTS), prefix=f"{name}.")
    if not parts:
        raise InvalidInput("give at least one of subject, text, html", field=name)
    return {
        part: validate_template(parts[part], f"{name}.{part}", html=part == "html")
        for part in EMAIL_TEMPLATE_PARTS
        if part in parts
    }


def validate_address(raw: object, name: str) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > 254:
        raise InvalidInput("an email address is required", field=name)
    try:
        # SMTPUTF8 is not sent, so a non-ASCII local part could never be delivered:
        # refused here, and an internationalised domain kept in its ASCII (IDNA) form
        checked = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"not a valid email address: {exc}", field=name) from exc
    return str(checked.ascii_email)


def validate_url(
    raw: object, name: str, *, allow_private: bool, allowed: ssrf.AllowList = ssrf.NOTHING
) -> str:
    """An absolute http(s) URL without credentials or fragment.

    Literal addresses and ``localhost`` are refused here for a clear early error; the
    binding check is made by the sink on the address it actually connects to.
    """
    if not isinstance(raw, str) or not raw:
        raise InvalidInput("a URL is required", field=name)
    if len(raw) > MAX_URL:
        raise InvalidInput(f"URL is longer than {MAX_URL} characters", field=name)
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in raw):
        raise InvalidInput("URL must not contain spaces or control characters", field=name)
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"not a valid URL: {exc}", field=name) from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("URL scheme must be http or https", field=name)
    host = parts.hostname
    if not host:
        raise InvalidInput("URL must name a host", field=name)
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("credentials in the URL are not supported", field=name)
    if parts.fragment:
        raise InvalidInput("URL must not have a fragment", field=name)
    if port == 0:
        raise InvalidInput("URL port must be 1-65535", field=name)
    address = ssrf.parse(host)
    if address is None and "[" in parts.netloc:
        raise InvalidInput("URL host in brackets must be an IPv6 address", field=name)
    if address is None:
        try:
            ssrf.ascii_name(host)
        except UnicodeError as exc:
            raise InvalidInput("URL host is not a valid name", field=name) from exc
    listed = allowed.allows(host, host)  # NOTIFY_ALLOWED_PRIVATE_TARGETS
    if not allow_private and not listed:
        if address is not None and (reason := ssrf.classify(address)):
            raise InvalidInput(f"URL targets a {reason} address", field=name)
        bare = host.rstrip(".")  # "localhost." is the same name, fully qualified
        if bare == "localhost" or bare.endswith(".localhost"):
            raise InvalidInput("URL targets a loopback address", field=name)
    return raw


def sink_kind_change(current: Subscription, patch: Patch) -> None:
    if patch.sink is not None and patch.sink["kind"] != current.kind:
        raise InvalidInput(
            "a subscription's sink kind cannot change; create a new subscription",
            field="sink.kind",
        )
    # its keys are of one kind: HMAC secrets or Ed25519 keys
    if patch.sink is not None and patch.sink.get("signature") != current.sink.get("signature"):
        raise InvalidInput(
            "a webhook's signature scheme cannot change; create a new subscription",
            field="sink.signature",
        )
