"""Which browser origins may use the gateway with the user's cookie (pure).

A browser sends ``Origin`` on a WebSocket handshake and on cross-site writes; other
clients send none. The gateway's own origin is always allowed; others only when
listed in ``NOTIFY_CORS_ORIGINS`` (``*`` allows any).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


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
) -> bool:
    if origin is None:
        return True  # not a browser: nothing rides on a cookie it did not choose
    if "*" in allowed or origin in allowed:
        return True
    own = _origin_of(origin)
    if public_url is not None and own is not None and own == _origin_of(public_url):
        return True
    return same_origin(origin, host_header, secure)
