"""Unknown variables are named with the likely intended one; secrets come from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from notify.cli.producer import describe, expiry_note
from notify.cli.tail import cursor_of
from notify.errors import ConfigError
from notify.settings import from_files, known_variables, unknown_variables


@pytest.mark.parametrize(
    ("name", "likely"),
    [
        ("NOTIFY_CORS_ORIGIN", "NOTIFY_CORS_ORIGINS"),
        ("NOTIFY_REDIS_URI", "NOTIFY_REDIS_URL"),
        ("NOTIFY_JWT_SECRETS", "NOTIFY_JWT_SECRET"),
        ("NOTIFY_JWT_SECRET_FIEL", "NOTIFY_JWT_SECRET_FILE"),
        ("NOTIFY_ZZZ", None),
    ],
)
def test_unknown_variables(name: str, likely: str | None) -> None:
    env = {name: "x", "NOTIFY_REDIS_URL": "redis://x", "PATH": "/bin"}
    assert unknown_variables(env) == [(name, likely)]


def test_known_variables_include_the_file_forms() -> None:
    known = known_variables()
    assert {"NOTIFY_JWT_SECRET_FILE", "NOTIFY_SMTP_URL_FILE", "NOTIFY_REDIS_URL"} <= known


def test_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("abc\n")
    (tmp_path / "k").write_text("-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n")
    env = {
        "NOTIFY_JWT_SECRET_FILE": str(tmp_path / "s"),
        "NOTIFY_JWT_PUBLIC_KEY_FILE": str(tmp_path / "k"),
    }
    assert from_files(env) == {
        "jwt_secret": "abc",
        "jwt_public_key": "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----",
    }
    with pytest.raises(ConfigError, match="NOTIFY_SMTP_URL_FILE: cannot read"):
        from_files({"NOTIFY_SMTP_URL_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="NOTIFY_JWT_SECRET_FILE: is set together"):
        from_files({**env, "NOTIFY_JWT_SECRET": "y"})


@pytest.mark.parametrize(
    ("after", "cursor"),
    [("0", "0-0"), ("earliest", "0-0"), ("EARLIEST", "0-0"), ("5-1", "5-1"), (None, None)],
)
def test_tail_cursor(after: str | None, cursor: str | None) -> None:
    assert cursor_of(after) == cursor


def test_expiry_note() -> None:
    assert expiry_note(86400, now=0) == "expires 1970-01-02T00:00:00Z (in 1 day)"
    assert describe(7200) == "2 hours" and describe(90) == "1.5 minutes"
    assert expiry_note(None) == "never expires"
