"""The `notify` command as a user runs it: real processes, real Redis and SMTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jwt

from notify.cli import parser
from notify.settings import known_variables
from tests.support.factories import RedisFactory
from tests.support.ports import free_port
from tests.support.procs import child_env
from tests.support.redis import RedisServer
from tests.support.smtp_server import SmtpServer

SECRET = "s3cret-" * 6


def notify(*args: str, cwd: Path | None = None, **env: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notify", *args],
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_version_and_every_option_explained() -> None:
    out = notify("--version")
    assert out.returncode == 0 and out.stdout.startswith("notify "), out
    actions = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    known = known_variables()
    for name, sub in actions.items():
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help, f"notify {name} {action.option_strings or action.dest}: no help"
            named = [w.strip("(),;:") for w in action.help.split() if w.startswith("(NOTIFY_")]
            named += [w.strip("(),;:") for w in action.help.split() if w.startswith("NOTIFY_")]
            assert all(v in known for v in named), (name, action.help)
    serve = actions["serve"].format_help()
    for variable in ("NOTIFY_HOST", "NOTIFY_PORT", "NOTIFY_WORKERS", "NOTIFY_ACCESS_LOG"):
        assert variable in serve


def test_unknown_variables_are_reported_with_the_likely_one() -> None:
    out = notify(
        "token", "--sub", "bob", NOTIFY_JWT_SECRET=SECRET, NOTIFY_CORS_ORIGIN="https://a.example"
    )
    assert out.returncode == 0, out.stderr
    assert "NOTIFY_CORS_ORIGIN is not a notify setting; did you mean NOTIFY_CORS_ORIGINS?" in (
        out.stderr
    )


def test_tokens_expire_by_default(tmp_path: Path) -> None:
    out = notify("token", "--sub", "bob", "--publish", "a.>", NOTIFY_JWT_SECRET=SECRET)
    claims = jwt.decode(out.stdout.strip(), SECRET, algorithms=["HS256"])
    assert abs(claims["exp"] - (time.time() + 86400)) < 60
    assert "expires" in out.stderr and "in 1 day" in out.stderr
    out = notify("token", "--sub", "bob", "--ttl", "60", NOTIFY_JWT_SECRET=SECRET)
    assert (
        abs(jwt.decode(out.stdout.strip(), SECRET, algorithms=["HS256"])["exp"] - time.time() - 60)
        < 30
    )
    out = notify("token", "--sub", "bob", "--no-expiry", NOTIFY_JWT_SECRET=SECRET)
    assert "exp" not in jwt.decode(out.stdout.strip(), SECRET, algorithms=["HS256"])
    assert "warning: this token never expires" in out.stderr
    # the secret from a file, as container secrets are mounted
    (tmp_path / "secret").write_text(SECRET + "\n")
    out = notify("token", "--sub", "bob", NOTIFY_JWT_SECRET_FILE=tmp_path / "secret")
    assert jwt.decode(out.stdout.strip(), SECRET, algorithms=["HS256"])["sub"] == "bob"
    out = notify(
        "token", "--sub", "b", NOTIFY_JWT_SECRET_FILE=tmp_path / "nope", NOTIFY_JWT_SECRET=SECRET
    )
    assert out.returncode == 2 and "NOTIFY_JWT_SECRET_FILE" in out.stderr


def test_check_reaches_redis_and_smtp_and_masks_secrets(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    server = redis_factory(password="redis-pass-123")
    smtp = SmtpServer().start()
    try:
        (tmp_path / "secret").write_text(SECRET)
        out = notify(
            "check",
            NOTIFY_REDIS_URL=server.url,
            NOTIFY_JWT_SECRET_FILE=tmp_path / "secret",
            NOTIFY_SMTP_URL=smtp.url,
            NOTIFY_HISTORY_SECONDS="7200",
        )
    finally:
        smtp.stop()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "redis    ok" in out.stdout and "smtp     ok" in out.stdout, out.stdout
    assert SECRET not in out.stdout and "redis-pass-123" not in out.stdout
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if "NOTIFY_" in line}
    assert "********" in lines["NOTIFY_JWT_SECRET"] and "[file]" in lines["NOTIFY_JWT_SECRET"]
    assert "7200" in lines["NOTIFY_HISTORY_SECONDS"] and "[env]" in lines["NOTIFY_HISTORY_SECONDS"]

    # a broker of its own (RabbitMQ on this machine, `make deps` starts it): reached,
    # its password never shown; one that does not answer is a failure
    rabbit = "amqp://guest:guest@127.0.0.1:5672//"
    out = notify(
        "check", NOTIFY_REDIS_URL=server.url, NOTIFY_JWT_SECRET=SECRET, NOTIFY_BROKER_URL=rabbit
    )
    assert out.returncode == 0 and "broker   ok    amqp://guest:" in out.stdout, out.stdout
    assert ":guest@" not in out.stdout
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    out = notify(
        "check", NOTIFY_REDIS_URL=server.url, NOTIFY_JWT_SECRET=SECRET, NOTIFY_BROKER_URL=dead
    )
    assert out.returncode == 1 and "broker   FAIL" in out.stdout, out.stdout

    server.kill()
    out = notify("check", NOTIFY_REDIS_URL=server.url, NOTIFY_JWT_SECRET=SECRET)
    assert out.returncode == 1 and "redis    FAIL" in out.stdout, out.stdout
    out = notify("check", NOTIFY_MAX_QUEUED="zero")
    assert out.returncode == 2 and "NOTIFY_MAX_QUEUED" in out.stdout


def test_tail_after_zero_and_earliest_and_which_redis(redis_server: RedisServer) -> None:
    ids = []
    for n in range(3):
        out = notify("publish", "cli.a", "t", str(n), NOTIFY_REDIS_URL=redis_server.url)
        assert out.returncode == 0, out.stderr
        assert f"using Redis {redis_server.url}" in out.stderr
        ids.append(out.stdout.strip())
    for after in ("0", "earliest"):
        out = notify(
            "tail", "cli.>", "--after", after, "--count", "3", NOTIFY_REDIS_URL=redis_server.url
        )
        assert out.returncode == 0, out.stderr
        assert "using Redis" in out.stderr
        assert [json.loads(line)["id"] for line in out.stdout.splitlines()] == ids
