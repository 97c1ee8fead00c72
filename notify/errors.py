"""The notify error tree.

    NotifyError
    ├── InvalidInput                 bad input from a client (422 unless said otherwise)
    │   ├── InvalidChannel           channel or pattern grammar
    │   ├── InvalidEvent             event fields (type, data, origin)
    │   ├── InvalidCursor            an unparsable event id / cursor (400)
    │   ├── TooLarge                 over a size limit (413)
    │   └── UnsupportedMediaType     a cookie-authenticated write without JSON (415)
    ├── AuthError
    │   ├── Unauthenticated          no token, bad token, expired token (401)
    │   └── Forbidden                valid token without the right (403)
    │       └── CrossOrigin          a cookie-authenticated write from elsewhere (403)
    ├── RateLimited                  over a rate limit (429 + Retry-After)
    ├── NotFound                     no such resource (404)
    ├── Conflict                     state does not allow the operation (409)
    ├── StoreUnavailable             Redis cannot take or give data now (503 + Retry-After)
    ├── ConfigError                  a bad setting; names the variable
    └── DeliveryError                a sink could not deliver
        ├── TransientDeliveryError   try again later (optionally after `retry_after`)
        └── PermanentDeliveryError   do not retry
            └── TargetGone           the receiver asked to disable the subscription (410)

Every API-facing error carries a stable `code`; the problem+json `type` is
`https://notify.dev/problems/<code>`.
"""

from __future__ import annotations

PROBLEM_BASE = "https://notify.dev/problems/"


class NotifyError(Exception):
    status = 500
    code = "internal"
    title = "Internal error"

    def __init__(self, detail: str = "", *, field: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.field = field

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
