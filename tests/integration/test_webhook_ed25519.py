"""Standard Webhooks v1a (Ed25519) signatures end to end, verified with the public key
alone, by Python's cryptography and by Node's own crypto module (independent code)."""

from __future__ import annotations

import base64
import shutil
import subprocess

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.integration.delivery_stack import Stack
from tests.support.webhook_receiver import Received, Receiver

WAIT = 40.0  # the first delivery waits for a worker to start, slow on a loaded machine
SPKI_ED25519 = bytes.fromhex("302a300506032b6570032100")  # DER prefix of a raw public key
NODE_VERIFY = """
const crypto = require("crypto");
const [pub, sig, signed] = process.argv.slice(1).map((a) => Buffer.from(a, "base64"));
const spki = Buffer.from("SPKI", "hex");
const der = Buffer.concat([spki, pub]);
const key = crypto.createPublicKey({ key: der, format: "der", type: "spki" });
process.exit(crypto.verify(null, signed, key, sig) ? 0 : 1);
""".replace("SPKI", SPKI_ED25519.hex())


def signed_content(got: Received) -> bytes:
    h = got.headers
    return f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + got.body


def v1a_signatures(got: Received) -> list[bytes]:
    parts = [p.split(",", 1) for p in got.headers["webhook-signature"].split(" ")]
    assert all(scheme == "v1a" for scheme, _ in parts)
    return [base64.b64decode(sig) for _, sig in parts]


def verified_by_python(public: str, got: Received) -> bool:
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public.removeprefix("whpk_")))
    for sig in v1a_signatures(got):
        try:
            key.verify(sig, signed_content(got))
            return True
        except Exception:
            continue
    return False


def verified_by_node(public: str, got: Received) -> bool:
    node = shutil.which("node")
    assert node is not None, (
        "node is needed for the independent verifier (make deps installs nodejs)"
    )
    raw = public.removeprefix("whpk_")
    return any(
        subprocess.run(
            [
                node,
                "-e",
                NODE_VERIFY,
                raw,
                base64.b64encode(sig).decode(),
                base64.b64encode(signed_content(got)).decode(),
            ],
            timeout=30,
            check=False,
        ).returncode
        == 0
        for sig in v1a_signatures(got)
    )


def test_v1a_signatures_verify_with_the_public_key(stack: Stack, receiver: Receiver) -> None:
    created = stack.subscribe(
        "orders.>", {"kind": "webhook", "url": receiver.url("/ed"), "signature": "v1a"}
    )
    assert "secret" not in created
    public = created["public_key"]
    assert public.startswith("whpk_") and created["sink"]["signature"] == "v1a"
    assert stack.client.get(f"/v1/subscriptions/{created['id']}").json()["public_key"] == public
    stack.publish("orders.eu", "order.created", {"order": 17})
    [got] = receiver.wait("/ed", 1, timeout=WAIT)
    assert verified_by_python(public, got)
    assert verified_by_node(public, got)
    # rotation: a new key pair, and the old key keeps signing beside it for 24 h
    rotated = stack.client.post(f"/v1/subscriptions/{created['id']}/rotate-secret").json()
    assert "secret" not in rotated and rotated["public_key"] != public
    stack.publish("orders.eu", "order.created", {"order": 18})
    second = receiver.wait("/ed", 2, timeout=WAIT)[1]
    assert len(v1a_signatures(second)) == 2
    assert verified_by_python(public, second) and verified_by_python(rotated["public_key"], second)
    assert verified_by_node(rotated["public_key"], second)
    # a tampered body verifies with neither
    second.body = second.body + b" "
    assert not verified_by_python(public, second) and not verified_by_node(public, second)


def test_the_signature_scheme_is_validated_and_cannot_change(stack: Stack) -> None:
    sink = {"kind": "webhook", "url": "https://h.example.com/x"}
    r = stack.client.post(
        "/v1/subscriptions", json={"channel": "a", "sink": {**sink, "signature": "v2"}}
    )
    assert r.status_code == 422 and r.json()["field"] == "sink.signature"
    sub = stack.subscribe("orders.>", sink)
    r = stack.client.patch(
        f"/v1/subscriptions/{sub['id']}", json={"sink": {**sink, "signature": "v1a"}}
    )
    assert r.status_code == 422 and r.json()["field"] == "sink.signature"
