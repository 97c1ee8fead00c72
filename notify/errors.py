"""The notify error tree.

    NotifyError
    ├── InvalidInput                 bad input from a client (422 unless said otherwise)
    │   ├── InvalidChannel           channel or pattern grammar
    │   ├── InvalidEvent             event fields (type, data, origin)
    │   ├── InvalidCursor            an unparsable event id / cursor (400)
    │   ├── TooLarge                 over a size limit (413)
    │   │   └── HeadersTooLarge      request header fields over their caps (431)
    │   └── UnsupportedMediaType     a cookie-authenticated write without JSON (415)
    ├── AuthError
    │   ├── Unauthenticated          no token, bad token, expired token (401)
    │   └── Forbidden                valid token without the right (403)
    │       └── CrossOrigin          a cookie-authenticated write from elsewhere (403)
    ├── RateLimited                  over a rate limit (429 + Retry-After)
    ├── NotFound                     no such resource (404)
    ├── Conflict                     state does not allow the operation (409)
    ├── StoreUnavailable             Redis cannot take or give data now (503 + Retry-After)
    ├── NotReady                     /readyz: Redis or the event reader is down (503)
    ├── HttpError                    HTTP itself could not be served (400 or its own status)
    │   ├── MethodNotAllowed         the path exists, the method does not (405 + Allow)
    │   └── RequestTimeout           the request did not arrive in time (408)
    ├── ConfigError                  a bad setting; names the variable
    └── DeliveryError                a sink could not deliver
        ├── TransientDeliveryError   try again later (optionally after `retry_after`)
        └── PermanentDeliveryError   do not retry
            └── TargetGone           the receiver asked to disable the subscription (410)

Every API-facing error carries a stable `code` (lower-case words joined by `-`); the
problem+json `type` is `<base><code>` (base: `NOTIFY_PROBLEM_BASE_URL`, by default the
gateway's own `/problems/`, where `CATALOGUE` below is served as one page per code).
The gateway answers with no other code: every problem it sends is built from one of
these classes (``notify.api.problems``).
A validation error names its first bad `field` and, in `errors`, every one found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

PROBLEM_BASE = "https://notify.dev/problems/"
T = TypeVar("T")


class NotifyError(Exception):
    status = 500
    code = "internal"
    title = "Internal error"

    def __init__(self, detail: str = "", *, field: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.field = field
        self.errors: list[NotifyError] = []  # every problem found, this one first

    def each(self) -> list[NotifyError]:
        return self.errors or [self]

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.code


class InvalidInput(NotifyError):
    status = 422
    code = "invalid-input"
    title = "Invalid input"


class InvalidChannel(InvalidInput):
    code = "invalid-channel"
    title = "Invalid channel or pattern"


class InvalidEvent(InvalidInput):
    code = "invalid-event"
    title = "Invalid event"


class InvalidCursor(InvalidInput):
    status = 400
    code = "invalid-cursor"
    title = "Invalid event id"


class TooLarge(InvalidInput):
    status = 413
    code = "too-large"
    title = "Payload too large"


class HeadersTooLarge(TooLarge):
    status = 431
    code = "headers-too-large"
    title = "Request header fields too large"


class UnsupportedMediaType(InvalidInput):
    status = 415
    code = "unsupported-media-type"
    title = "Unsupported media type"


class AuthError(NotifyError):
    status = 401
    code = "unauthenticated"
    title = "Unauthenticated"


class Unauthenticated(AuthError):
    pass


class Forbidden(AuthError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class CrossOrigin(Forbidden):
    code = "cross-origin"
    title = "Cross-origin request refused"


class RateLimited(NotifyError):
    status = 429
    code = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str = "", *, retry_after: float = 1.0) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class NotFound(NotifyError):
    status = 404
    code = "not-found"
    title = "Not found"


class Conflict(NotifyError):
    status = 409
    code = "conflict"
    title = "Conflict"


class StoreUnavailable(NotifyError):
    status = 503
    code = "store-unavailable"
    title = "Event store unavailable"
    retry_after = 1.0


class NotReady(NotifyError):
    status = 503
    code = "not-ready"
    title = "Not ready"


class HttpError(NotifyError):
    status = 400
    code = "http-error"
    title = "Bad request"


class MethodNotAllowed(HttpError):
    status = 405
    code = "method-not-allowed"
    title = "Method not allowed"


class RequestTimeout(HttpError):
    status = 408
    code = "request-timeout"
    title = "Request timeout"


class ConfigError(NotifyError):
    code = "config"
    title = "Configuration error"

    def __init__(self, variable: str, detail: str) -> None:
        super().__init__(f"{variable}: {detail}")
        self.variable = variable


class DeliveryError(NotifyError):
    code = "delivery"
    title = "Delivery failed"

    def __init__(
        self, detail: str = "", *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.retry_after = retry_after


class TransientDeliveryError(DeliveryError):
    pass


class PermanentDeliveryError(DeliveryError):
    pass


class TargetGone(PermanentDeliveryError):
    pass


class Findings:
    """Collects validation errors so that one answer names every bad field:
    ``value = found.attempt(check, raw)`` (None when it failed), then ``found.raise_any()``."""

    def __init__(self) -> None:
        self.errors: list[NotifyError] = []

    def add(self, exc: NotifyError) -> None:
        self.errors.extend(exc.each())

    def attempt(self, check: Callable[..., T], *args: object, **kwargs: object) -> T | None:
        try:
            return check(*args, **kwargs)
        except InvalidInput as exc:
            self.add(exc)
            return None

    def raise_any(self) -> None:
        if self.errors:
            first = self.errors[0]
            first.errors = list(self.errors)
            raise first


@dataclass(frozen=True, slots=True)
class ProblemType:
    status: int
    title: str
    help: str


def _entry(error: type[NotifyError], help: str) -> tuple[str, ProblemType]:
    return error.code, ProblemType(error.status, error.title, help)


CATALOGUE: dict[str, ProblemType] = dict(
    [
        _entry(
            InvalidInput,
            "The request is well-formed HTTP but a field is wrong. `field` names the first"
            " bad field and `errors` lists every one found, each with its own `detail`.",
        ),
        _entry(
            InvalidChannel,
            "A channel is 1-16 dot-separated segments of [A-Za-z0-9_@:-], at most 255"
            " characters; a pattern may also use `*` (one segment) and a final `>`.",
        ),
        _entry(
            InvalidEvent,
            "An event is an object with `channel`, `type` (1-128 characters of"
            " [A-Za-z0-9_.:-]), `data` (any JSON, may be null) and an optional `origin`.",
        ),
        _entry(
            InvalidCursor,
            "An event id (`after`, `last_event_id`, `Last-Event-ID`) must be one the"
            " server gave out; pass it back unchanged.",
        ),
        _entry(
            TooLarge,
            "The body or an event is over a size limit (NOTIFY_MAX_EVENT_BYTES,"
            " NOTIFY_MAX_BATCH_BYTES). Send smaller events or split the batch.",
        ),
        _entry(
            HeadersTooLarge,
            "The request's header fields are over NOTIFY_MAX_HEADER_BYTES in all or"
            " NOTIFY_MAX_HEADERS in number; the connection was closed. Send fewer or"
            " shorter headers (a token belongs in one `Authorization` field).",
        ),
        _entry(
            UnsupportedMediaType,
            "A write authenticated by the `notify_token` cookie must be sent with"
            " `Content-Type: application/json` (protection against cross-site forgery)."
            " Or send the token as `Authorization: Bearer <token>`.",
        ),
        _entry(
            Unauthenticated,
            "No token, or a token that is malformed, badly signed or expired. Send"
            " `Authorization: Bearer <token>` (or the `notify_token` cookie, or `?token=`"
            " for EventSource); `notify token` mints one.",
        ),
        _entry(
            Forbidden,
            "The token is valid but its `publish` or `subscribe` claims do not cover the"
            " channel (`field` says which), or only an admin may do this.",
        ),
        _entry(
            CrossOrigin,
            "A write authenticated by the `notify_token` cookie must come from the gateway's"
            " own origin or one listed in NOTIFY_CORS_ORIGINS (checked on `Origin`, else"
            " `Referer`). Add the page's origin there, or send `Authorization: Bearer`.",
        ),
        _entry(
            RateLimited,
            "Over a rate limit (NOTIFY_PUBLISH_RATE per token subject, or too many failed"
            " authentications from one address). Wait `Retry-After` seconds.",
        ),
        _entry(NotFound, "No such resource, or it belongs to another user."),
        _entry(Conflict, "The resource's state does not allow this operation now."),
        _entry(
            StoreUnavailable,
            "Redis cannot take or give data now; nothing was half-stored. Retry after"
            " `Retry-After` seconds.",
        ),
        _entry(NotifyError, "An unexpected error in the server; its log has the details."),
        _entry(NotReady, "`/readyz`: Redis is unreachable or the event reader stopped."),
        _entry(HttpError, "The HTTP request itself could not be served."),
        _entry(MethodNotAllowed, "The path exists; `Allow` lists its methods."),
        _entry(
            RequestTimeout,
            "The request's headers and body did not arrive within"
            " NOTIFY_REQUEST_TIMEOUT_SECONDS; the connection was closed.",
        ),
    ]
)
"""Every problem ``type`` the API answers with, by code: served at ``/problems/<code>``."""
