"""Standard Webhooks signing (pure, exact bytes).

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}`` with the body bytes
exactly as sent; the key is the base64 part of the ``whsec_`` secret. While a rotated
secret is still valid, every valid secret signs and the signatures are space-separated.

Asymmetric signing (``v1a``, Ed25519): the subscription keeps a ``whsk_`` secret key
(base64 of the 32-byte seed) and its receiver gets only the ``whpk_`` public key
(base64 of the 32 raw bytes), so a leaked verifying key cannot forge a request.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SECRET_PREFIX = "whsec_"
SIGNING_KEY_PREFIX = "whsk_"
PUBLIC_KEY_PREFIX = "whpk_"
SECRET_BYTES = 32
CONTENT_TYPE = "application/json"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_signing_key() -> str:
    """A new Ed25519 secret key, ``whsk_`` + base64 of its 32-byte seed."""
    return SIGNING_KEY_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@functools.lru_cache(maxsize=1024)
def _ed25519(secret: str) -> Ed25519PrivateKey:
    seed = base64.b64decode(secret.removeprefix(SIGNING_KEY_PREFIX), validate=True)
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key(secret: str) -> str:
    """The ``whpk_`` public key of a ``whsk_`` secret key."""
    raw = _ed25519(secret).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode()


def is_signing_key(secret: str) -> bool:
    return secret.startswith(SIGNING_KEY_PREFIX)


def secret_key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        # tolerate unpadded base64, as receivers' libraries do
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is whsec_ followed by base64") from exc
    if not key:
        raise ValueError("a webhook secret must not be empty")
    return key


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    if is_signing_key(secret):
        return "v1a," + base64.b64encode(_ed25519(secret).sign(signed)).decode()
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers for one request."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets_),
        "content-type": CONTENT_TYPE,
    }
