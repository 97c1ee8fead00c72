"""A throwaway certificate authority and a ``redis-server`` that speaks only TLS.

The CA and the server certificate (for ``127.0.0.1`` and ``localhost``) are made with
``cryptography`` into a test's directory; the server listens on its TLS port alone
(``--port 0``) and does not ask clients for certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.redis import RedisServer, _read_reply, _resp


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


def make_certificates(directory: Path) -> Certificates:
    """A CA and a server certificate it signed, valid for an hour, as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notify test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    out = Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    out.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return out


class TlsRedisServer(RedisServer):
    """``redis-server`` with TLS on its port and no plain-text port at all."""

    def __init__(self, directory: Path, certificates: Certificates, **kwargs: object) -> None:
        super().__init__(directory, **kwargs)  # type: ignore[arg-type]
        self.certificates = certificates

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        ca = quote(str(self.certificates.ca), safe="")
        return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"

    def command(self) -> list[str]:
        args = super().command()
        at = args.index("--port")
        args[at + 1] = "0"
        return [
            *args,
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.certificates.cert),
            "--tls-key-file", str(self.certificates.key),
            "--tls-ca-cert-file", str(self.certificates.ca),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def _probe(self) -> str:
        context = ssl.create_default_context(cafile=str(self.certificates.ca))
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
        ):
            reader = sock.makefile("rb")
            if self.password:
                sock.sendall(_resp("AUTH", self.password))
                if not (auth := _read_reply(reader)).startswith("+OK"):
                    return auth
            sock.sendall(_resp("PING"))
            if not (pong := _read_reply(reader)).startswith("+PONG"):
                return pong
            sock.sendall(_resp("INFO", "server"))
            if f"process_id:{self.pid}\r\n" not in _read_reply(reader):
                return f"another server answers on port {self.port}"
            return "ready"
