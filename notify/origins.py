"""Which browser origins may use the gateway with the user's cookie (pure).

A browser sends ``Origin`` on a WebSocket handshake and on cross-site writes; other
clients send none. The gateway's own origin is always allowed; others only when
listed in ``NOTIFY_CORS_ORIGINS`` (``*`` allows any), or, with
``NOTIFY_CORS_ALLOW_LOOPBACK`` (on under ``notify dev``), when served from this very
machine (:func:`is_loopback`), as a dev server on another port is.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Sequence
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
# an Origin as a browser serialises it: scheme, host and port, nothing else
LOOPBACK_SHAPE = re.compile(
    r"https?://(?P<host>localhost|[0-9.]{7,15}|\[::1\])(?::(?P<port>[0-9]{1,5}))?", re.IGNORECASE
)


def _origin_of(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not host or port is None:
        return None
    return scheme, host, port


def is_loopback(origin: str) -> bool:
    """Whether ``origin`` is exactly ``http(s)://host[:port]`` with a loopback host:
    ``localhost``, an address in 127.0.0.0/8, or ``[::1]``. Names that merely start
    like one (``localhost.evil.com``, ``127.0.0.1.nip.io``) resolve wherever their
    owner wants and are not loopback; nor is ``null``."""
    shape = LOOPBACK_SHAPE.fullmatch(origin)
    if shape is None or int(shape["port"] or 0) > 65535:
        return False
    host = shape["host"].lower()
    if host in ("localhost", "[::1]"):
        return True
    try:
        return ipaddress.IPv4Address(host) in LOOPBACK_V4
    except ValueError:  # 127.0.0.256, leading zeros
        return False


def cors_allows(origin: str, allowed: Collection[str], loopback: bool) -> bool:
    """Whether CORS lets a page on ``origin`` read answers: listed in
    ``NOTIFY_CORS_ORIGINS`` (``allowed``; ``*`` is any), or loopback when ``loopback``.
    CORSMiddleware and the fast path both ask this, so they always agree."""
    return "*" in allowed or origin in allowed or (loopback and is_loopback(origin))


def same_origin(origin: str, host_header: str | None, secure: bool) -> bool:
    """Whether ``origin`` is the gateway as the browser reached it (``Host`` header,
    over TLS or not)."""
    if not host_header:
        return False
    scheme = "https" if secure else "http"
    own = _origin_of(f"{scheme}://{host_header}")
    return own is not None and _origin_of(origin) == own


def origin_allowed(
    origin: str | None,
    allowed: Sequence[str],
    host_header: str | None,
    secure: bool,
    public_url: str | None = None,
    loopback: bool = False,
) -> bool:
    if origin is None:
        return True  # not a browser: nothing rides on a cookie it did not choose
    if cors_allows(origin, allowed, loopback):
        return True
    own = _origin_of(origin)
    if public_url is not None and own is not None and own == _origin_of(public_url):
        return True
    return same_origin(origin, host_header, secure)
