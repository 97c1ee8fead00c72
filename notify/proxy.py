"""The egress proxy setting (``NOTIFY_WEBHOOK_PROXY``), parsed once."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP egress proxy that tunnels with CONNECT (``http://[user:pass@]host:port``)."""

    host: str
    port: int
    authorization: str | None  # the Proxy-Authorization value, when the URL has a user

    @classmethod
    def parse(cls, url: str) -> Proxy:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("must be an http://[user:password@]host:port URL")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must name only the proxy: http://[user:password@]host:port")
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from exc
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return cls(parts.hostname, port, authorization)
