"""Settings that contradict each other stop the process at start-up, naming them."""

from __future__ import annotations

import pytest

from notify.errors import ConfigError
from notify.settings import load


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"delivery_lease_seconds": 10, "webhook_timeout_seconds": 10},
            "NOTIFY_DELIVERY_LEASE_SECONDS must exceed NOTIFY_WEBHOOK_TIMEOUT_SECONDS",
        ),
        (
            # a worker busy with batches for a whole lease starts nothing meanwhile
            {"delivery_lease_seconds": 60, "worker_stall_seconds": 60},
            "NOTIFY_WORKER_STALL_SECONDS must exceed NOTIFY_DELIVERY_LEASE_SECONDS",
        ),
    ],
)
def test_contradictions_are_refused(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(**overrides)


def test_defaults_hold_together() -> None:
    settings = load()
    assert settings.worker_stall_seconds > settings.delivery_lease_seconds
    assert settings.delivery_lease_seconds > settings.webhook_timeout_seconds


def test_secrets_never_show_in_the_settings_text() -> None:
    settings = load(
        smtp_url="smtp://mailer:smtp-pass-123@relay:587", jwt_secret="jwt-secret-" + "x" * 32
    )
    assert settings.smtp_url.get_secret_value() == "smtp://mailer:smtp-pass-123@relay:587"
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert "smtp-pass-123" not in text and "jwt-secret-" not in text


def test_a_bad_smtp_url_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="NOTIFY_SMTP_URL"):
        load(smtp_url="http://relay")


def test_a_stream_lease_is_a_minute_renewed_every_20_s_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The production figures, as literals: the integration test runs a 6 s lease."""
    monkeypatch.delenv("NOTIFY_STREAM_LEASE_SECONDS", raising=False)
    settings = load()
    assert settings.stream_lease_seconds == 60
    assert settings.stream_renewal_seconds == 20
    assert load(stream_lease_seconds=6).stream_renewal_seconds == 2


@pytest.mark.parametrize("lease", [0, 2.9, -60])
def test_a_stream_lease_shorter_than_3_s_is_refused(lease: float) -> None:
    with pytest.raises(ConfigError, match="NOTIFY_STREAM_LEASE_SECONDS"):
        load(stream_lease_seconds=lease)
