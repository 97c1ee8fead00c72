"""Tokens and authorization decisions (pure but for the clock)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from notify.channels import covered_by_any, is_segment, validate_pattern
from notify.errors import Forbidden, InvalidInput, Unauthenticated

COOKIE = "notify_token"
QUERY = "token"


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    admin: bool = False
    exp: float | None = None
    token_id: str = field(default="", compare=False)

    @property
    def personal(self) -> tuple[str, str]:
        return (f"user.{self.sub}", f"user.{self.sub}.>")

    def can_publish(self, channel: str) -> bool:
        return self.admin or covered_by_any(self.publish, channel)

    def can_read(self, pattern: str) -> bool:
        return (
            self.admin
            or covered_by_any(self.personal, pattern)
            or covered_by_any(self.subscribe, pattern)
        )

    def require_publish(self, channel: str) -> None:
        if not self.can_publish(channel):
            raise Forbidden(f"token may not publish to {channel!r}", field="channel")

    def require_read(self, pattern: str, field: str = "channel") -> None:
        if not self.can_read(pattern):
            raise Forbidden(f"token may not read {pattern!r}", field=field)

    def acting_for(self, user: str | None) -> str:
        """The user id to act for: oneself, or anyone for an admin."""
        if user is None or user == self.sub:
            return self.sub
        if not is_segment(user):
            raise InvalidInput("user must be a valid channel segment", field="user")
        if not self.admin:
            raise Forbidden("only an admin may act for another user", field="user")
        return user

    def expired(self, now: float | None = None) -> bool:
        return self.exp is not None and (now if now is not None else time.time()) >= self.exp


@dataclass(slots=True)
class Verifier:
    """Checks tokens with an HS256 secret and/or an RS256 public key.

    Verified tokens are remembered (until their ``exp``), so a client that sends the
    same token with every request pays for the signature check once.
    """

    secret: str | None = None
    public_key: str | None = None
    cache_size: int = 10_000
    _cache: dict[str, Principal] = field(default_factory=dict, repr=False)

    def verify(self, token: str) -> Principal:
        known = self._cache.get(token)
        if known is not None:
            if not known.expired():
                return known
            del self._cache[token]
            raise Unauthenticated("token expired")
        principal = self._verify(token)
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[token] = principal
        return principal

    def _verify(self, token: str) -> Principal:
        if not token:
            raise Unauthenticated("no token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("malformed token") from exc
        alg = header.get("alg")
        key: str | None
        if alg == "HS256":
            key = self.secret
        elif alg == "RS256":
            key = self.public_key
        else:
            raise Unauthenticated("unsupported token algorithm")
        if key is None:
            raise Unauthenticated("unsupported token algorithm")
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], options={"require": ["sub"]}, leeway=0
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired") from exc
        except (jwt.PyJWTError, ValueError, OverflowError, TypeError) as exc:
            # PyJWT converts time claims with int(): odd values raise more than its own
            raise Unauthenticated("invalid token") from exc
        return principal_from_claims(claims)


def _patterns(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Unauthenticated(f"claim {name!r} must be a list of patterns")
    try:
        return tuple(validate_pattern(v, field=name) for v in value)
    except InvalidInput as exc:
        raise Unauthenticated(f"claim {name!r} holds an invalid pattern: {exc.detail}") from exc


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not is_segment(sub):
        raise Unauthenticated("claim 'sub' must be a valid channel segment")
    admin = claims.get("admin", False)
    if not isinstance(admin, bool):
        raise Unauthenticated("claim 'admin' must be a boolean")
    return Principal(
        sub=sub,
        publish=_patterns(claims, "publish"),
        subscribe=_patterns(claims, "subscribe"),
        admin=admin,
        exp=_expiry(claims.get("exp")),
    )


def _expiry(exp: object) -> float | None:
    """A JSON number, or none: a numeric string would pass PyJWT's own check (it calls
    ``int()``) and then never expire here, where the verified-token cache needs it."""
    if exp is None:
        return None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or exp != exp:  # NaN
        raise Unauthenticated("claim 'exp' must be a number (seconds since the epoch)")
    try:
        return float(exp)
    except OverflowError:  # an integer beyond any float: as good as never
        return math.inf


def mint(
    secret: str,
    sub: str,
    *,
    publish: Iterable[str] = (),
    subscribe: Iterable[str] = (),
    admin: bool = False,
    ttl: float | None = None,
    now: float | None = None,
) -> str:
    """An HS256 token with notify's claims (``ttl`` seconds from ``now`` when given).

    Claims a gateway would refuse (a ``sub`` that is not a channel segment, an invalid
    pattern) raise :class:`InvalidInput` here, rather than make a token that only
    fails later with a 401."""
    claims: dict[str, Any] = {
        "sub": sub,
        "publish": list(publish),
        "subscribe": list(subscribe),
        "admin": admin,
    }
    try:
        principal_from_claims(claims)
    except Unauthenticated as exc:
        raise InvalidInput(exc.detail.replace("claim ", "", 1)) from None
    if ttl is not None:
        claims["exp"] = int((now if now is not None else time.time()) + ttl)
    return jwt.encode(claims, secret, algorithm="HS256")


def pick_token(authorization: str | None, cookie: str | None, query: str | None) -> str | None:
    """Header first, then cookie, then query parameter (for EventSource)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
        return value.strip()
    if cookie:
        return cookie
    if query:
        return query
    return None
