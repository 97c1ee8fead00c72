"""Cross-site request forgery: which cookie-authenticated writes are let through (pure).

A browser attaches the ``notify_token`` cookie to any request for the gateway, including
one a page on another site makes with a ``<form>`` or a ``no-cors`` fetch; CORS only
hides the answer from that page, the request itself still runs. So a state-changing
request authenticated by the cookie must show that it comes from a trusted origin
(``Origin``, else ``Referer``) and must carry a JSON content type, which no form and no
``no-cors`` fetch can send. Tokens in the ``Authorization`` header or the query string
are not sent by the browser on its own and are not checked here.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from notify.errors import CrossOrigin, UnsupportedMediaType
from notify.origins import is_loopback

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL as a browser writes it in ``Origin`` (lower
    case, default port left out); None for anything else (including ``null``)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        host += f":{port}"
    return f"{scheme}://{host}"


def is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/<anything>+json``, parameters allowed."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def check_cookie_write(
    method: str,
    *,
    origin: str | None,
    referer: str | None,
    content_type: str | None,
    trusted: Iterable[str],
    loopback: bool = False,
) -> None:
    """Refuse a cookie-authenticated write (403 :class:`CrossOrigin`, 415
    :class:`UnsupportedMediaType`) unless it comes from one of the ``trusted`` origins
    (or any loopback one, with ``loopback``) and carries JSON."""
    if method.upper() not in STATE_CHANGING:
        return
    check_cookie_origin(origin=origin, referer=referer, trusted=trusted, loopback=loopback)
    if not is_json(content_type):
        raise UnsupportedMediaType(
            "a write authenticated by the notify_token cookie must be sent as"
            " 'Content-Type: application/json'"
        )


def check_cookie_origin(
    *, origin: str | None, referer: str | None, trusted: Iterable[str], loopback: bool = False
) -> None:
    """Refuse (403 :class:`CrossOrigin`) a cookie-authenticated request that does not
    show a ``trusted`` origin: every write, and a WebSocket handshake (CORS does not
    guard sockets, and a socket can publish). ``*`` among them is not a trust: a
    wildcard CORS list lets any page read answers, not act with a user's cookie.
    ``loopback`` (``NOTIFY_CORS_ALLOW_LOOPBACK``) trusts every loopback origin as if
    listed."""
    claimed = origin.strip() if origin is not None else None
    if claimed is None or claimed == "":
        source = origin_of(referer) if referer else None
        if source is None:
            raise CrossOrigin(
                "a request authenticated by the notify_token cookie must carry an Origin"
                " or Referer header; send the token as 'Authorization: Bearer <token>'"
            )
    else:
        source = origin_of(claimed)
        if source is None:
            raise CrossOrigin(f"origin {claimed!r} may not use the notify_token cookie")
    allowed = {o for o in (origin_of(t) for t in trusted if t != "*") if o is not None}
    if source not in allowed and not (loopback and is_loopback(source)):
        raise CrossOrigin(
            f"origin {source!r} may not use the notify_token cookie;"
            " list it in NOTIFY_CORS_ORIGINS, or send 'Authorization: Bearer <token>'"
        )
