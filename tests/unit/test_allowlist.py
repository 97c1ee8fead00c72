"""NOTIFY_ALLOWED_PRIVATE_TARGETS: private targets allowed by name or network, one by one,
instead of NOTIFY_ALLOW_PRIVATE_TARGETS' all-or-nothing."""

from __future__ import annotations

import pytest

from notify import ssrf
from notify.errors import ConfigError, InvalidInput
from notify.settings import load
from notify.subscriptions import validate_url

ALLOWED = ssrf.AllowList.parse("alertmanager, .svc.local., 10.1.0.0/16, fd00::1, LocalHost")


@pytest.mark.parametrize(
    ("host", "address", "allowed"),
    [
        ("alertmanager", "172.18.0.3", True),
        ("ALERTMANAGER.", "172.18.0.3", True),
        ("am.svc.local", "10.9.9.9", True),
        ("svc.local", "10.9.9.9", False),
        ("other", "10.1.2.3", True),
        ("other", "10.2.0.1", False),
        ("other", "fd00::1", True),
        ("other", "fd00::2", False),
        ("localhost", "127.0.0.1", True),
        ("alertmanager2", "172.18.0.3", False),
    ],
)
def test_allows(host: str, address: str, allowed: bool) -> None:
    assert ALLOWED.allows(host, address) is allowed


@pytest.mark.parametrize("text", ["10.0.0.0/33", "1.2.3", "fd00::/200", "bad name!"])
def test_bad_entries_name_the_setting(text: str) -> None:
    with pytest.raises(ValueError):
        ssrf.AllowList.parse(text)
    with pytest.raises(ConfigError, match="NOTIFY_ALLOWED_PRIVATE_TARGETS"):
        load(allowed_private_targets=text)


def test_empty_allows_nothing() -> None:
    assert ssrf.AllowList.parse(" , ") == ssrf.NOTHING
    assert not ssrf.NOTHING.allows("localhost", "127.0.0.1")


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://alertmanager:9093", True),
        ("http://localhost:9093", True),
        ("http://10.1.0.7/hook", True),
        ("http://10.2.0.7/hook", False),
        ("http://127.0.0.1:9093", False),
        ("http://[fd00::1]/x", True),
        ("http://[fd00::2]/x", False),
    ],
)
def test_subscription_urls(url: str, ok: bool) -> None:
    if ok:
        assert validate_url(url, "sink.url", allow_private=False, allowed=ALLOWED) == url
    else:
        with pytest.raises(InvalidInput):
            validate_url(url, "sink.url", allow_private=False, allowed=ALLOWED)
