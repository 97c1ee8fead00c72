"""Standard Webhooks signing on exact bytes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from notify import webhooks

# The Standard Webhooks reference vector (the standardwebhooks library's own test).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_spec_vector() -> None:
    assert webhooks.signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_prefix_and_padding_are_optional() -> None:
    bare = SPEC_SECRET.removeprefix("whsec_")
    assert webhooks.signature(bare, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    # a 16-byte key needs two padding characters (the spec vector's needs none); the
    # reference library, given the padded secret, is the oracle
    padded = "whsec_MDEyMzQ1Njc4OWFiY2RlZg=="
    when = datetime.fromtimestamp(SPEC_TIMESTAMP, UTC)
    expected = Webhook(padded).sign(SPEC_ID, when, SPEC_BODY)
    for secret in (padded, padded.rstrip("="), "MDEyMzQ1Njc4OWFiY2RlZg"):
        assert webhooks.signature(secret, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == expected
    # a 32-byte key (what notify makes) needs one
    padded = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    expected = Webhook(padded).sign(SPEC_ID, when, SPEC_BODY)
    assert webhooks.signature(padded.rstrip("="), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == expected


def test_headers_sign_with_every_secret_in_order() -> None:
    other = webhooks.new_secret()
    got = webhooks.headers([other, SPEC_SECRET], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    first, second = got["webhook-signature"].split(" ")
    assert second == SPEC_SIGNATURE
    assert first == webhooks.signature(other, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert got["webhook-id"] == SPEC_ID
    assert got["webhook-timestamp"] == "1614265330"
    assert got["content-type"] == "application/json"


def test_signature_covers_the_exact_body_bytes() -> None:
    spaced = webhooks.signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, b'{"test":2432232314}')
    assert spaced != SPEC_SIGNATURE


def test_new_secrets_are_random_and_long_enough() -> None:
    a, b = webhooks.new_secret(), webhooks.new_secret()
    assert a != b
    assert a.startswith("whsec_")
    # 32 bytes: Standard Webhooks asks for 24 to 64
    assert len(base64.b64decode(a.removeprefix("whsec_"), validate=True)) == 32


def test_the_reference_library_verifies_our_headers() -> None:
    secret = webhooks.new_secret()
    body = '{"id":"1-0","channel":"a","type":"t","data":"é"}'.encode()
    now = int(datetime.now(UTC).timestamp())
    Webhook(secret).verify(body, webhooks.headers([secret], "msg_x", now, body))


NOT_BASE64 = "a webhook secret is whsec_ followed by base64"
EMPTY = "a webhook secret must not be empty"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("whsec_", EMPTY),
        ("", EMPTY),
        ("whsec_%%%", NOT_BASE64),
        # lenient base64 would skip the stray characters and sign with some key
        ("whsec_MfKQ9r8G!KYqrTwjUPD8ILPZIo2LaLaSw", NOT_BASE64),
        ("whsec_MfKQ9r8GKYqr TwjUPD8ILPZIo2LaLaSw", NOT_BASE64),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", NOT_BASE64),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaL", NOT_BASE64),  # a length no padding completes
    ],
)
def test_bad_secrets_are_refused(bad: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        webhooks.secret_key(bad)
    assert str(info.value) == message


def test_a_bad_signing_key_is_refused_not_read_leniently() -> None:
    good = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    assert webhooks.signature(good, "msg_1", 1, b"{}").startswith("v1a,")
    # lenient base64 would skip the "!" and still find a 32-byte seed
    bad = "whsk_AAECA!wQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    with pytest.raises(ValueError):
        webhooks.signature(bad, "msg_1", 1, b"{}")
    with pytest.raises(ValueError):
        webhooks.public_key(bad)


def test_v1a_ed25519_signatures_verify_with_the_public_key() -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = webhooks.new_signing_key()
    assert key.startswith("whsk_") and webhooks.is_signing_key(key)
    public = webhooks.public_key(key)
    assert public.startswith("whpk_") and len(base64.b64decode(public[5:])) == 32
    hmac_secret = webhooks.new_secret()
    sent = webhooks.headers([key, hmac_secret], "msg_1", 1700000000, b'{"a":1}')
    v1a, v1 = sent["webhook-signature"].split(" ")
    assert v1 == webhooks.signature(hmac_secret, "msg_1", 1700000000, b'{"a":1}')
    scheme, signature = v1a.split(",")
    assert scheme == "v1a"
    verifier = Ed25519PublicKey.from_public_bytes(base64.b64decode(public[5:]))
    verifier.verify(base64.b64decode(signature), b'msg_1.1700000000.{"a":1}')  # raises if bad
    with pytest.raises(InvalidSignature):
        verifier.verify(base64.b64decode(signature), b'msg_1.1700000000.{"a":2}')
