"""Secrets out of log lines (pure): query parameters that carry a token.

The gateway reads query parameters by their decoded names (``%74oken`` is ``token``),
so redaction matches the decoded name too; any parameter whose decoded name
mentions a token (``token``, ``access_token``, …) loses its value.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;?\s\"'#]*)=(?P<value>[^&;\s\"'#]*)")


def _secret_name(raw: str) -> bool:
    name = unquote_plus(unquote_plus(raw)).lower()  # twice: names encoded twice over
    return "token" in name


def _sub(match: re.Match[str]) -> str:
    if not _secret_name(match["name"]) or not match["value"]:
        return match[0]
    return f"{match['lead']}{match['name']}={REDACTED}"


def redact(text: str) -> str:
    """``text`` with the value of every token query parameter replaced."""
    if "=" not in text:
        return text
    return _PARAM.sub(_sub, text)
