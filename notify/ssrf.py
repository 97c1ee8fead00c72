"""Which network addresses a webhook may reach (pure).

A target is refused when the address actually connected to is not a public unicast
address. IPv6 forms that embed an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64,
6to4) are judged by the IPv4 address they carry, so ``::ffff:127.0.0.1`` is loopback.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIXTOFOUR: Final = ipaddress.IPv6Network("2002::/16")
_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")
# ranges the standard library does not flag, or flags differently across versions
_EXTRA_V4: Final = (
    (ipaddress.IPv4Network("100.64.0.0/10"), "private"),  # carrier-grade NAT
    (ipaddress.IPv4Network("192.0.0.0/24"), "reserved"),  # IETF protocol assignments
    (ipaddress.IPv4Network("198.18.0.0/15"), "reserved"),  # benchmarking
    (ipaddress.IPv4Network("0.0.0.0/8"), "unspecified"),  # "this network"
)
_EXTRA_V6: Final = (
    (ipaddress.IPv6Network("fc00::/7"), "private"),  # unique local
    (ipaddress.IPv6Network("fec0::/10"), "private"),  # deprecated site-local
    (ipaddress.IPv6Network("2001:db8::/32"), "reserved"),  # documentation
    (ipaddress.IPv6Network("100::/64"), "reserved"),  # discard-only
)


def parse(value: str) -> IPAddress | None:
    """The address in ``value`` (brackets and a zone index allowed), or None for names."""
    text = value.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def ascii_name(host: str) -> str:
    """A host name as DNS and TLS see it: IDNA 2008 with UTS #46 mapping, as browsers
    and httpx do (Python's own "idna" codec is IDNA 2003, which maps "faß.de" to the
    different domain "fass.de"). ASCII names pass unchanged once their labels are
    checked for length. Raises UnicodeError for a name that cannot be encoded."""
    if host.isascii():
        name = host.encode("idna").decode("ascii")  # as before: label lengths only
        if "xn--" in name.lower():
            idna.decode(name)  # an A-label must hold Punycode, as httpx checks it
        return name
    return idna.encode(host, uts46=True).decode("ascii")


def embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIXTOFOUR:
        return address.sixtofour
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        # deprecated ::a.b.c.d; ::/128 and ::1 are handled as themselves
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: IPAddress) -> str | None:
    """Why ``address`` is refused ("loopback", "private", ...), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return "private"
        inner = embedded_v4(address)
        if inner is not None:
            return classify(inner)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    extra = _EXTRA_V4 if isinstance(address, ipaddress.IPv4Address) else _EXTRA_V6
    for network, reason in extra:
        if address in network:
            return reason
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    return None


def refusal(address: str, allow_private: bool) -> str | None:
    """A human reason to refuse connecting to ``address``, or None to allow it. It
    does not name the address: it reaches the subscription's owner, who must not
    learn what an internal host name resolves to."""
    if allow_private:
        return None
    parsed = parse(address)
    if parsed is None:
        return "it resolves to something that is not an IP address"
    reason = classify(parsed)
    return f"it resolves to a {reason} address" if reason else None


_V4 = r"\d{1,3}(?:\.\d{1,3}){3}"
_V6 = (
    r"\[?(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}"
    r"|(?:[0-9A-Fa-f]{1,4}:)*[0-9A-Fa-f]{0,4}::(?:[0-9A-Fa-f]{1,4}:)*[0-9A-Fa-f]{0,4})\]?"
)
_ADDRESS = re.compile(rf"(?<![\w.:])(?:{_V4}|{_V6})(?::\d{{1,5}})?(?![\w.:])")


def scrub(text: str) -> str:
    """``text`` (a delivery error a user will read) without IP addresses or ports:
    connection errors name the address a host name resolved to."""
    return _ADDRESS.sub("<address>", text)


@dataclass(frozen=True, slots=True)
class AllowList:
    """Private targets allowed despite the guard (``NOTIFY_ALLOWED_PRIVATE_TARGETS``): host
    names (``alertmanager``; ``.svc.cluster.local`` for every name under it) and
    addresses or CIDRs (``10.0.5.0/24``). A listed name is trusted to whatever it
    resolves to; a network allows its addresses whatever name led there."""

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AllowList:
        """From a comma-separated list; ValueError names a bad entry."""
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for raw in text.split(","):
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            if entry[0].isdigit() or ":" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                except ValueError as exc:
                    raise ValueError(f"{raw.strip()!r} is not an address or CIDR") from exc
                continue
            name = entry.removeprefix("*")
            try:
                encoded = ascii_name(name.lstrip("."))
            except UnicodeError as exc:
                raise ValueError(f"{raw.strip()!r} is not a host name") from exc
            if not _HOST_NAME.fullmatch(encoded):
                raise ValueError(f"{raw.strip()!r} is not a host name")
            if name.startswith("."):
                suffixes.append(name)
            else:
                names.add(name)
        return cls(frozenset(names), tuple(suffixes), tuple(networks))

    def allows_name(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.names or any(name.endswith(s) for s in self.suffixes)

    def allows(self, host: str, address: str) -> bool:
        """Whether connecting to ``address``, reached through ``host``, is allowed."""
        if self.allows_name(host):
            return True
        parsed = parse(address)
        return parsed is not None and any(parsed in net for net in self.networks)


NOTHING: Final = AllowList()
_HOST_NAME: Final = re.compile(
    r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*"
)
