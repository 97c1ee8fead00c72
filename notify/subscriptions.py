"""Subscriptions: the model, the request bodies that make and change one, and their
validation (pure).

A subscription says: events on channels matching ``channel``, of types matching
``types`` (empty = all), published after the subscription was created, go to ``sink``.

The bodies of ``POST`` and ``PATCH /v1/subscriptions`` are declared once, as pydantic
models with the sink a union discriminated by its ``kind``. That declaration validates
a body, names each bad field in errors (``sink.url``, ``types[2]``) and is the
OpenAPI document's schema of the body (notify.api.schemas). A string whose grammar JSON
Schema can only approximate (a channel pattern, a URL, an address, a template) is
checked by its validator below and described by a pattern allowing what it accepts, or
a subset of it (tests/unit/test_openapi_schemas.py); what JSON Schema cannot say at all
(a URL's private target, a template's syntax) is answered 422 all the same.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import orjson
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import ErrorDetails

from notify import ssrf, templating, webhooks
from notify.channels import (
    MAX_LENGTH,
    MAX_SEGMENT_LENGTH,
    MAX_SEGMENTS,
    STAR,
    TAIL,
    matches,
    validate_pattern,
)
from notify.errors import InvalidInput, NotifyError
from notify.formats import CHAT, FORMATS

KINDS = ("web", "email", "webhook", "monitoring")  # of the models of Sink below
MAX_TYPES = 32
MAX_URL = 2048
MAX_ADDRESS = 254
MAX_DIGEST_SECONDS = 86400
ROTATION_OVERLAP_SECONDS = 86400
_TYPE_SEGMENT = re.compile(r"[A-Za-z0-9_:\-]{1,128}")
T = TypeVar("T")
JsonSchema = dict[str, Any]


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
class NewSubscription:
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


def validate_type_pattern(raw: object, name: str = "types") -> str:
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


def validate_template(raw: object, name: str = "sink.template", *, html: bool = False) -> str:
    if not isinstance(raw, str) or not raw:
        raise InvalidInput("a template is a non-empty string", field=name)
    try:
        templating.check(raw, html)
    except templating.TemplateError as exc:
        raise InvalidInput(f"template error: {exc}", field=name) from exc
    return raw


def validate_address(raw: object, name: str = "sink.to") -> str:
    if not isinstance(raw, str) or not raw or len(raw) > MAX_ADDRESS:
        raise InvalidInput("an email address is required", field=name)
    try:
        # SMTPUTF8 is not sent, so a non-ASCII local part could never be delivered:
        # refused here, and an internationalised domain kept in its ASCII (IDNA) form
        checked = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"not a valid email address: {exc}", field=name) from exc
    return str(checked.ascii_email)


def validate_url(
    raw: object,
    name: str = "sink.url",
    *,
    allow_private: bool,
    allowed: ssrf.AllowList = ssrf.NOTHING,
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


# How JSON Schema says the strings the validators above check
SEGMENT_RE = rf"[A-Za-z0-9_@:-]{{1,{MAX_SEGMENT_LENGTH}}}"
PATTERN_RE = rf"^(?:(?:{SEGMENT_RE}|\*)\.){{0,{MAX_SEGMENTS - 1}}}(?:{SEGMENT_RE}|\*|>)$"
TYPE_PATTERN_RE = r"^(?:(?:[A-Za-z0-9_:-]+|\*)\.)*(?:[A-Za-z0-9_:-]+|\*|>)$"
USER_RE = rf"^{SEGMENT_RE}$"
# A subset of what the sink validators accept: DNS names only (a literal address or
# localhost may be refused as a private target), without "--" (IDNA rules); an email
# domain's top level is never a special-use name (email-validator refuses .test, .local,
# .arpa, ...: a negative look-ahead, in any case, since JSON Schema has no flags)
_LABEL = r"[A-Za-z0-9]{1,20}(?:-[A-Za-z0-9]{1,20}){0,2}"
_HOST = rf"(?:{_LABEL}\.){{1,4}}[A-Za-z]{{2,63}}"
_SPECIAL_USE = "|".join(
    "".join(f"[{c}{c.upper()}]" for c in name)
    for name in ("arpa", "invalid", "local", "localhost", "onion", "test")
)
_MAIL_HOST = rf"(?:{_LABEL}\.){{1,4}}(?!(?:{_SPECIAL_USE})$)[A-Za-z]{{2,63}}"
URL_RE = rf"^https?://{_HOST}(?::[1-9][0-9]{{0,3}})?(?:[/?][!-\"$-~]*)?$"
EMAIL_RE = rf"^[A-Za-z0-9_+-]{{1,32}}(?:\.[A-Za-z0-9_+-]{{1,15}}){{0,2}}@{_MAIL_HOST}$"


def string(pattern: str, max_length: int, **extra: Any) -> JsonSchema:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": pattern, **extra}


class _Refused(ValueError):
    """An InvalidInput on its way through pydantic, which gathers the ValueErrors of
    every field (any other exception would end the validation at the first)."""

    def __init__(self, error: InvalidInput) -> None:
        super().__init__(error.detail)
        self.error = error


def _refusing(check: Callable[[Any], T]) -> Callable[[Any], T]:
    def run(value: Any) -> T:
        try:
            return check(value)
        except InvalidInput as exc:
            raise _Refused(exc) from None

    return run


def _explained(detail: str, **by_error: str) -> WrapValidator:
    """A refusal of the value as a whole said as ``detail`` (or ``by_error[type]``) in
    place of pydantic's words; a refusal of one of its parts (a list's item) is left to
    that part's own explanation."""

    def check(value: object, handler: ValidatorFunctionWrapHandler) -> object:
        try:
            return handler(value)
        except ValidationError as exc:
            errors = exc.errors()
            if any(e["loc"] for e in errors):
                raise
            raise _Refused(InvalidInput(by_error.get(errors[0]["type"], detail))) from None

    return WrapValidator(check)


@dataclass(frozen=True, slots=True)
class _Targets:
    """The validation's context: the private webhook targets the settings allow."""

    allow_private: bool = False
    allowed: ssrf.AllowList = ssrf.NOTHING


def _url(value: object, info: ValidationInfo) -> str:
    targets = info.context if isinstance(info.context, _Targets) else _Targets()
    check = partial(validate_url, allow_private=targets.allow_private, allowed=targets.allowed)
    return _refusing(check)(value)


def _unset() -> Any:
    """The default of a field that may be left out but not sent as null (not required,
    not nullable to JSON Schema): None, told from a value by ``model_fields_set``."""
    return None


def _is_none(value: object) -> bool:
    return value is None


TEMPLATE: JsonSchema = {"type": "string", "minLength": 1, "description": "Jinja2; sees `event`"}
Pattern = Annotated[
    str,
    PlainValidator(_refusing(validate_pattern)),
    WithJsonSchema(
        string(
            PATTERN_RE,
            MAX_LENGTH,
            description="a channel whose segments may be `*` (one segment) or, last, `>`"
            " (one or more)",
            example="orders.*",
        )
    ),
]
TypePattern = Annotated[
    str,
    PlainValidator(_refusing(validate_type_pattern)),
    WithJsonSchema(
        string(
            TYPE_PATTERN_RE, 128, description="dot segments of [A-Za-z0-9_:-], `*` or a final `>`"
        )
    ),
]
TypePatterns = Annotated[
    list[TypePattern] | None,
    Field(
        max_length=MAX_TYPES,
        description="event types to deliver (none or null: all)",
        examples=[["order.*"]],
    ),
    _explained(
        "types must be a list of type patterns", too_long=f"at most {MAX_TYPES} type patterns"
    ),
]
User = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_SEGMENT_LENGTH, pattern=USER_RE),
    _explained("user must be a valid channel segment"),
]
Url = Annotated[
    str,
    PlainValidator(_url),
    WithJsonSchema(
        string(URL_RE, MAX_URL, format="uri", example="https://example.com/hooks/notify")
    ),
]
Address = Annotated[
    str,
    PlainValidator(_refusing(validate_address)),
    WithJsonSchema(string(EMAIL_RE, MAX_ADDRESS, format="email", example="a@example.com")),
]
Template = Annotated[str, PlainValidator(_refusing(validate_template)), WithJsonSchema(TEMPLATE)]
HtmlTemplate = Annotated[
    str,
    PlainValidator(_refusing(partial(validate_template, html=True))),
    WithJsonSchema(TEMPLATE),
]
Digest = Annotated[
    int,
    Field(ge=0, le=MAX_DIGEST_SECONDS),
    BeforeValidator(whole),
    _explained(f"digest_seconds must be an integer from 0 to {MAX_DIGEST_SECONDS}"),
]
Signature = Annotated[
    Literal["v1", "v1a"],
    _explained("signature must be v1 (HMAC-SHA256) or v1a (Ed25519)"),
]
if TYPE_CHECKING:  # a Literal of the tuple of formats: pydantic reads it, mypy cannot
    Format = str
else:
    Format = Annotated[Literal[FORMATS], _explained(f"format must be one of {', '.join(FORMATS)}")]
Enabled = Annotated[bool, _explained("enabled must be true or false")]


class _Body(BaseModel):
    """A JSON object of exactly its fields, each of exactly its JSON type (strict: no
    ``"30"`` for 30 nor ``1`` for true)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class WebSink(_Body):
    """The events appear on the user's ``/v1/feed``."""

    kind: Literal["web"]


class EmailTemplate(_Body):
    """The parts of the mail to write differently; a part not given keeps the default."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    subject: Template = Field(default_factory=_unset, exclude_if=_is_none)
    text: Template = Field(default_factory=_unset, exclude_if=_is_none)
    html: HtmlTemplate = Field(default_factory=_unset, exclude_if=_is_none)

    @model_validator(mode="after")
    def _some_part(self) -> EmailTemplate:
        if not self.model_fields_set:
            raise _Refused(InvalidInput("give at least one of subject, text, html"))
        return self


class EmailSink(_Body):
    """A mail per event, or per ``digest_seconds`` window."""

    kind: Literal["email"]
    digest_seconds: Digest = 0
    to: Address
    template: EmailTemplate | None = Field(None, exclude_if=_is_none)


def _template_use() -> JsonDict:
    """JSON Schema's words for :meth:`WebhookSink._fits_format`: a format without a
    template (the default among them), a chat format with or without one, ``template``
    with one."""
    return {
        "oneOf": [
            {
                "properties": {
                    "format": {"enum": [f for f in FORMATS if f not in CHAT and f != "template"]},
                    "template": {"type": "null"},
                }
            },
            {"required": ["format"], "properties": {"format": {"enum": [*sorted(CHAT)]}}},
            {
                "required": ["format", "template"],
                "properties": {"format": {"const": "template"}, "template": {"type": "string"}},
            },
        ]
    }


class WebhookSink(_Body):
    """A signed POST of each event (Standard Webhooks) in one of the body formats: a
    chat format may take a template, ``template`` must."""

    model_config = ConfigDict(json_schema_extra=_template_use())

    kind: Literal["webhook"]
    url: Url
    # stored without what is left at its default (signature, format, template), so a
    # plain webhook keeps its plain shape
    signature: Signature = Field("v1", description="v1a: Ed25519", exclude_if=lambda v: v == "v1")
    format: Format = Field("standard", exclude_if=lambda v: v == "standard")
    template: Template | None = Field(None, validate_default=True, exclude_if=_is_none)

    @field_validator("template", mode="before")
    @classmethod
    def _fits_format(cls, value: object, info: ValidationInfo) -> object:
        fmt = info.data.get("format")  # absent when the format itself was refused
        if fmt == "template" and value is None:
            raise _Refused(InvalidInput('format "template" needs a template'))
        if fmt is not None and value is not None and fmt not in CHAT | {"template"}:
            raise _Refused(
                InvalidInput(
                    f"a template is used by the formats template, {', '.join(sorted(CHAT))}"
                )
            )
        return value


class MonitoringSink(_Body):
    """An Alertmanager alert per event."""

    kind: Literal["monitoring"]
    url: Url


Sink = Annotated[WebSink | EmailSink | WebhookSink | MonitoringSink, Field(discriminator="kind")]


class SubscriptionCreate(_Body):
    """``POST /v1/subscriptions``."""

    channel: Pattern
    types: TypePatterns = None
    sink: Sink
    user: User | None = Field(
        None, description="admin only: act for this user (not with another `?user=`)"
    )


class SubscriptionPatch(_Body):
    """``PATCH /v1/subscriptions/{id}``: what is given changes."""

    enabled: Enabled | None = None
    channel: Pattern = Field(default_factory=_unset)
    types: TypePatterns = None
    sink: Sink = Field(
        default_factory=_unset, description="of the same kind (and signature) as before"
    )


_CREATE = TypeAdapter(SubscriptionCreate)
_PATCH = TypeAdapter(SubscriptionPatch)
_SINK: TypeAdapter[WebSink | EmailSink | WebhookSink | MonitoringSink] = TypeAdapter(Sink)
_TYPES: TypeAdapter[list[str] | None] = TypeAdapter(TypePatterns)


def parse_create(
    raw: object, *, allow_private: bool, allowed: ssrf.AllowList = ssrf.NOTHING
) -> NewSubscription:
    body = _checked(_CREATE, raw, _Targets(allow_private, allowed))
    return NewSubscription(
        channel=body.channel,
        types=_distinct(body.types),
        sink=body.sink.model_dump(),
        user=body.user,
    )


def parse_patch(
    raw: object, *, allow_private: bool, allowed: ssrf.AllowList = ssrf.NOTHING
) -> Patch:
    body = _checked(_PATCH, raw, _Targets(allow_private, allowed))
    given = body.model_fields_set
    return Patch(
        channel=body.channel,
        types=_distinct(body.types) if "types" in given else None,
        sink=body.sink.model_dump() if "sink" in given else None,
        enabled=body.enabled,
    )


def validate_sink(
    raw: object, *, allow_private: bool, allowed: ssrf.AllowList = ssrf.NOTHING
) -> dict[str, Any]:
    """A sink as a subscription would store it (its fields named ``sink.*``)."""
    return _checked(_SINK, raw, _Targets(allow_private, allowed), at=("sink",)).model_dump()


def validate_types(raw: object) -> tuple[str, ...]:
    return _distinct(_checked(_TYPES, raw, _Targets(), at=("types",)))


def _distinct(types: list[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(types or ()))


def _checked(
    adapter: TypeAdapter[T], raw: object, targets: _Targets, at: tuple[str, ...] = ()
) -> T:
    try:
        return adapter.validate_python(raw, context=targets)
    except ValidationError as exc:
        errors: list[NotifyError] = [_refusal(e, (*at, *e["loc"])) for e in _ordered(exc.errors())]
        errors[0].errors = errors  # every bad field is named, not just the first
        raise errors[0] from None


def _ordered(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """In the order of the checks before pydantic: at each level of the body, its
    unknown fields first (by name), then the declared ones in their order."""
    first: dict[tuple[int | str, ...], int] = {}
    for error in errors:
        for depth in range(1, len(error["loc"]) + 1):
            first.setdefault(error["loc"][:depth], len(first))

    def key(error: ErrorDetails) -> list[tuple[int, str, int]]:
        loc = error["loc"]
        unknown = error["type"] == "extra_forbidden"
        return [
            (0, str(loc[-1]), 0) if unknown and depth == len(loc) else (1, "", first[loc[:depth]])
            for depth in range(1, len(loc) + 1)
        ]

    return sorted(errors, key=key)


def _refusal(error: ErrorDetails, loc: tuple[int | str, ...]) -> InvalidInput:
    name = _field(loc)
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _Refused):
        cause.error.field = name
        return cause.error
    match error["type"]:
        case "union_tag_invalid" | "union_tag_not_found":
            return InvalidInput(f"kind must be one of {', '.join(KINDS)}", field=f"{name}.kind")
        case "extra_forbidden":
            return InvalidInput(f"unknown field {loc[-1]!r}", field=name)
        case "missing":
            return InvalidInput(f"{name} is required", field=name)
        case "model_type" | "model_attributes_type":
            return InvalidInput(f"{name} must be a JSON object", field=name)
    return InvalidInput(f"{name}: {error['msg']}", field=name)


def _field(loc: tuple[int | str, ...]) -> str:
    """``sink.template.html``, ``types[2]``: the name of where an error is, without the
    sink's kind that pydantic puts in (``sink.webhook.url``)."""
    names: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            names[-1] += f"[{part}]"
        elif not (i and loc[i - 1] == "sink" and part in KINDS):
            names.append(part)
    return ".".join(names) or "body"


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
