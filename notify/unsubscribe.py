"""Signed one-click unsubscribe links (pure), per RFC 8058.

A token is ``{subscription id}.{signature}``: the signature is an HMAC-SHA256 (cut to
128 bits, base64url) of the subscription id and the address it mails, under a key
derived from ``NOTIFY_UNSUBSCRIBE_SECRET`` or else from ``NOTIFY_JWT_SECRET``. Binding
the address means a link from mail sent to an old address stops working once the
subscription is changed to a new one. Tokens do not expire: a link in a year-old
mail must still work.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

PATH = "/v1/unsubscribe/"
_DERIVE = b"notify/unsubscribe/v1"
_TOKEN = re.compile(r"(sub_[a-z2-7]{1,64})\.([A-Za-z0-9_-]{22})")


def derive_key(secret: str) -> bytes:
    """A key of its own, so an unsubscribe signature is never a valid JWT signature."""
    return hmac.new(secret.encode(), _DERIVE, hashlib.sha256).digest()


def _signature(key: bytes, subscription_id: str, address: str) -> str:
    signed = f"{subscription_id}\n{address.lower()}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token(key: bytes, subscription_id: str, address: str) -> str:
    return f"{subscription_id}.{_signature(key, subscription_id, address)}"


def subscription_of(value: str) -> str | None:
    """The subscription a well-formed token names (not yet verified), or None."""
    found = _TOKEN.fullmatch(value)
    return found.group(1) if found else None


def verify(key: bytes, value: str, address: str) -> bool:
    found = _TOKEN.fullmatch(value)
    if not found:
        return False
    expected = _signature(key, found.group(1), address)
    return hmac.compare_digest(expected, found.group(2))


def url(public_url: str, key: bytes, subscription_id: str, address: str) -> str:
    return public_url.rstrip("/") + PATH + token(key, subscription_id, address)


def key_from(unsubscribe_secret: str | None, jwt_secret: str | None) -> bytes | None:
    """The signing key: the dedicated secret if set, else derived from the JWT secret;
    None when neither is configured (RS256-only deployments must set the former)."""
    secret = unsubscribe_secret or jwt_secret
    return derive_key(secret) if secret else None
