from __future__ import annotations

import time
from functools import cache
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from notify.auth import Principal, Verifier, mint, pick_token, principal_from_claims
from notify.errors import Forbidden, InvalidInput, Unauthenticated

SECRET = "s3cret-for-unit-tests-only-0123456789"


@cache
def rsa_keys() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def hs256(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def test_minted_token_verifies() -> None:
    token = mint(SECRET, "alice", publish=["orders.>"], subscribe=["docs.*", "a"], admin=False)
    principal = Verifier(secret=SECRET).verify(token)
    assert principal == Principal(
        sub="alice", publish=("orders.>",), subscribe=("docs.*", "a"), admin=False, exp=None
    )


def test_ttl_sets_exp() -> None:
    now = time.time()
    principal = Verifier(secret=SECRET).verify(mint(SECRET, "bob", ttl=60, now=now))
    assert principal.exp == float(int(now + 60))
    assert not principal.expired(now)
    assert principal.expired(now + 61)


def test_absent_claims_default_to_nothing() -> None:
    principal = Verifier(secret=SECRET).verify(hs256({"sub": "carol"}))
    assert principal == Principal(sub="carol")


def test_rs256_token_verifies_with_public_key() -> None:
    private, public = rsa_keys()
    token = jwt.encode({"sub": "dave", "admin": True}, private, algorithm="RS256")
    assert Verifier(public_key=public).verify(token).admin
    assert Verifier(secret=SECRET, public_key=public).verify(token).sub == "dave"


def _none_alg() -> str:
    return jwt.encode({"sub": "mallory", "admin": True}, "", algorithm="none")


def _hs256_keyed_with_public_key() -> str:
    # algorithm confusion: the RSA public key is public, so an HS256 token "signed" with
    # it must never be accepted
    import base64
    import hashlib
    import hmac
    import json

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": "mallory", "admin": True}).encode())
    signature = hmac.new(rsa_keys()[1].encode(), head + b"." + body, hashlib.sha256).digest()
    return (head + b"." + body + b"." + b64(signature)).decode()


@pytest.mark.parametrize(
    ("verifier", "make", "message"),
    [
        (Verifier(secret=SECRET), lambda: "", "no token"),
        (Verifier(secret=SECRET), lambda: "garbage", "malformed token"),
        (Verifier(secret=SECRET), lambda: "a.b.c", "malformed token"),
        (Verifier(secret=SECRET), lambda: mint(SECRET, "alice", ttl=-1), "token expired"),
        (
            Verifier(secret=SECRET),
            lambda: mint(SECRET, "alice", ttl=60, now=time.time() - 120),
            "token expired",
        ),
        (
            Verifier(secret=SECRET),
            lambda: mint("another-secret-of-sufficient-length-0123", "alice"),
            "invalid token",
        ),
        (Verifier(secret=SECRET), lambda: mint(SECRET, "alice")[:-4] + "AAAA", "invalid token"),
        (Verifier(secret=SECRET), _none_alg, "unsupported token algorithm"),
        (
            Verifier(secret=SECRET),
            lambda: jwt.encode({"sub": "a"}, SECRET * 2, algorithm="HS512"),
            "unsupported token algorithm",
        ),
        (
            Verifier(secret=SECRET),
            lambda: jwt.encode({"sub": "a"}, rsa_keys()[0], algorithm="RS256"),
            "unsupported token algorithm",
        ),
        (Verifier(public_key="unused"), lambda: mint(SECRET, "a"), "unsupported token algorithm"),
        (Verifier(), lambda: mint(SECRET, "a"), "unsupported token algorithm"),
        (Verifier(public_key="set later"), _hs256_keyed_with_public_key, "unsupported"),
        (Verifier(secret=SECRET), lambda: hs256({"admin": True}), "invalid token"),
        (Verifier(secret=SECRET), lambda: hs256({"sub": "a", "exp": "soon"}), "invalid token"),
    ],
)
def test_bad_tokens(verifier: Verifier, make: Any, message: str) -> None:
    if verifier.public_key == "set later":
        verifier = Verifier(public_key=rsa_keys()[1])
    with pytest.raises(Unauthenticated, match=message) as info:
        verifier.verify(make())
    assert info.value.status == 401


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"sub": ""}, "'sub'"),
        ({"sub": "a.b"}, "'sub'"),
        ({"sub": "a b"}, "'sub'"),
        ({"sub": "*"}, "'sub'"),
        ({"sub": ">"}, "'sub'"),
        ({"sub": "x" * 65}, "'sub'"),
        ({"sub": 5}, "'sub'"),
        ({"sub": None}, "'sub'"),
        ({"sub": "a", "admin": "true"}, "'admin'"),
        ({"sub": "a", "admin": 1}, "'admin'"),
        ({"sub": "a", "admin": None}, "'admin'"),
        ({"sub": "a", "publish": "orders"}, "'publish'"),
        ({"sub": "a", "publish": {"orders": True}}, "'publish'"),
        ({"sub": "a", "publish": [5]}, "'publish'"),
        ({"sub": "a", "publish": ["a..b"]}, "'publish'"),
        ({"sub": "a", "publish": [">.a"]}, "'publish'"),
        ({"sub": "a", "subscribe": None}, "'subscribe'"),
        ({"sub": "a", "subscribe": ["ok", None]}, "'subscribe'"),
        ({"sub": "a", "subscribe": [""]}, "'subscribe'"),
    ],
)
def test_bad_claims(claims: dict[str, Any], message: str) -> None:
    with pytest.raises(Unauthenticated, match=message):
        principal_from_claims(claims)
    if isinstance(claims["sub"], str) and claims["sub"]:
        with pytest.raises(Unauthenticated, match=message):
            Verifier(secret=SECRET).verify(hs256(claims))


@pytest.mark.parametrize("sub", ["alice", "u-1", "a@b", "x:y", "A_B", "x" * 64])
def test_valid_subjects(sub: str) -> None:
    assert principal_from_claims({"sub": sub}).sub == sub


ALICE = Principal(sub="alice", publish=("orders.>", "chat.room1"), subscribe=("docs.*", "news"))
ADMIN = Principal(sub="root", admin=True)


@pytest.mark.parametrize(
    ("principal", "channel", "expected"),
    [
        (ALICE, "orders.eu", True),
        (ALICE, "orders.eu.x", True),
        (ALICE, "orders", False),
        (ALICE, "chat.room1", True),
        (ALICE, "chat.room2", False),
        (ALICE, "docs.1", False),  # reading is not publishing
        (ALICE, "user.alice", False),  # personal channels are read-only
        (ADMIN, "anything.at.all", True),
        (Principal(sub="nobody"), "orders", False),
    ],
)
def test_can_publish(principal: Principal, channel: str, expected: bool) -> None:
    assert principal.can_publish(channel) is expected
    if expected:
        principal.require_publish(channel)
    else:
        with pytest.raises(Forbidden) as info:
            principal.require_publish(channel)
        assert (info.value.status, info.value.field) == (403, "channel")


@pytest.mark.parametrize(
    ("principal", "pattern", "expected"),
    [
        (ALICE, "user.alice", True),
        (ALICE, "user.alice.inbox", True),
        (ALICE, "user.alice.a.b.c", True),
        (ALICE, "user.alice.*", True),
        (ALICE, "user.alice.>", True),
        (ALICE, "user.alice.*.x", True),
        (ALICE, "user.bob", False),
        (ALICE, "user.alicex", False),
        (ALICE, "user.*", False),
        (ALICE, "user.>", False),
        (ALICE, "*.alice", False),
        (ALICE, ">", False),
        (ALICE, "user", False),
        (ALICE, "docs.42", True),
        (ALICE, "docs.*", True),
        (ALICE, "docs.>", False),
        (ALICE, "docs.42.x", False),
        (ALICE, "news", True),
        (ALICE, "news.x", False),
        (ALICE, "orders.eu", False),  # publishing is not reading
        (Principal(sub="bob", subscribe=(">",)), "user.alice", True),
        (ADMIN, ">", True),
        (ADMIN, "user.alice.>", True),
    ],
)
def test_can_read(principal: Principal, pattern: str, expected: bool) -> None:
    assert principal.can_read(pattern) is expected
    if not expected:
        with pytest.raises(Forbidden) as info:
            principal.require_read(pattern, field="channel[1]")
        assert info.value.field == "channel[1]"


@pytest.mark.parametrize(
    ("principal", "user", "expected"),
    [
        (ALICE, None, "alice"),
        (ALICE, "alice", "alice"),
        (ADMIN, None, "root"),
        (ADMIN, "alice", "alice"),
        (ALICE, "bob", Forbidden),
        (ADMIN, "a.b", InvalidInput),
        (ADMIN, "", InvalidInput),
        (ADMIN, "*", InvalidInput),
        (ALICE, "bad user", InvalidInput),
    ],
)
def test_acting_for(principal: Principal, user: str | None, expected: object) -> None:
    if isinstance(expected, str):
        assert principal.acting_for(user) == expected
    else:
        assert isinstance(expected, type)
        with pytest.raises(expected) as info:
            principal.acting_for(user)
        assert type(info.value) is expected and info.value.field == "user"


def test_principal_equality_ignores_token_id() -> None:
    assert Principal(sub="a", token_id="x") == Principal(sub="a", token_id="y")


@pytest.mark.parametrize(
    ("authorization", "cookie", "query", "expected"),
    [
        ("Bearer H", "C", "Q", "H"),
        ("bearer H", None, None, "H"),
        ("BEARER H", None, None, "H"),
        ("Bearer   H  ", None, None, "H"),
        (None, "C", "Q", "C"),
        ("", "C", "Q", "C"),
        (None, None, "Q", "Q"),
        (None, "", "Q", "Q"),
        (None, None, None, None),
        ("", "", "", None),
    ],
)
def test_pick_token_precedence(
    authorization: str | None, cookie: str | None, query: str | None, expected: str | None
) -> None:
    assert pick_token(authorization, cookie, query) == expected


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwdw==", "Token abc", "Bearer", "Bearer ", "Bearer    ", "abc", "Bearer\tabc"],
)
def test_pick_token_bad_scheme_is_not_skipped(authorization: str) -> None:
    with pytest.raises(Unauthenticated, match="Bearer"):
        pick_token(authorization, "cookie-token", "query-token")


def test_a_cached_token_still_expires() -> None:
    import time as _time

    from notify.auth import Verifier, mint

    secret = "s" * 40
    verifier = Verifier(secret=secret)
    minted = _time.time()
    token = mint(secret, "alice", ttl=3)  # room for a busy machine before the checks
    assert verifier.verify(token).sub == "alice"
    assert verifier.verify(token).sub == "alice"  # from the cache
    _time.sleep(max(0.0, minted + 3.2 - _time.time()))
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(token)


@pytest.mark.parametrize(
    ("sub", "claims", "named"),
    [
        ("bad sub", {}, "'sub'"),
        ("a.b", {}, "'sub'"),
        ("", {}, "'sub'"),
        ("ops", {"publish": ["a..b"]}, "'publish'"),
        ("ops", {"subscribe": ["a.>.b"]}, "'subscribe'"),
    ],
)
def test_mint_refuses_claims_a_gateway_would_refuse(
    sub: str, claims: dict[str, list[str]], named: str
) -> None:
    with pytest.raises(InvalidInput) as error:
        mint(SECRET, sub, **claims)
    assert named in error.value.detail


def _signed(payload: bytes) -> str:
    """A token with exactly this JSON payload (PyJWT would not write Infinity)."""
    import base64
    import hashlib
    import hmac

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    head = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(payload)
    sig = b64(hmac.new(SECRET.encode(), head, hashlib.sha256).digest())
    return (head + b"." + sig).decode()


@pytest.mark.parametrize(
    "payload",
    [
        b'{"sub":"alice","exp":"4102444800"}',  # a numeric string (in 2100)
        b'{"sub":"alice","exp":"soon"}',
        b'{"sub":"alice","exp":true}',
        b'{"sub":"alice","exp":Infinity}',
        b'{"sub":"alice","exp":NaN}',
        b'{"sub":"alice","exp":[1]}',
        b'{"sub":"alice","nbf":Infinity}',
    ],
)
def test_exp_must_be_a_number(payload: bytes) -> None:
    with pytest.raises(Unauthenticated):
        Verifier(secret=SECRET).verify(_signed(payload))


def test_an_exp_beyond_any_float_is_far_future_not_an_error() -> None:
    principal = Verifier(secret=SECRET).verify(_signed(b'{"sub":"alice","exp":1%s}' % (b"0" * 400)))
    assert principal.exp == float("inf") and not principal.expired()


def test_the_cache_keeps_a_numeric_exp_and_honours_it() -> None:
    verifier = Verifier(secret=SECRET)
    token = _signed(b'{"sub":"alice","exp":%.1f}' % (time.time() + 1.5))
    assert verifier.verify(token).exp is not None
    time.sleep(1.6)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(token)  # from the cache, which knows the expiry
