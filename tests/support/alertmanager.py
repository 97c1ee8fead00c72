"""A real Prometheus Alertmanager (Debian ``prometheus-alertmanager``) on a free port,
with a do-nothing receiver, no clustering and its storage in the test's directory."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.ports import free_port
from tests.support.system import ensure_binary

CONFIG = """\
global:
  resolve_timeout: {resolve_timeout}
route:
  receiver: "null"
receivers:
  - name: "null"
"""


class Alertmanager:
    def __init__(self, directory: Path, *, resolve_timeout: str = "5m") -> None:
        self.directory = directory
        self.port = free_port()
        self.resolve_timeout = resolve_timeout
        self.log_path = directory / "alertmanager.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Alertmanager:
        binary = ensure_binary(
            "prometheus-alertmanager", "prometheus-alertmanager", "/usr/bin/alertmanager"
        )
        config = self.directory / "alertmanager.yml"
        config.write_text(CONFIG.format(resolve_timeout=self.resolve_timeout))
        (self.directory / "data").mkdir(exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"alertmanager exited:\n{self.log()}")
                try:
                    if client.get(self.url + "/-/ready").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"alertmanager not ready after {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def alerts(self, **filters: Any) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts Alertmanager holds that are not resolved."""
        params = {k: str(v).lower() for k, v in filters.items()}
        response = httpx.get(self.url + "/api/v2/alerts", params=params, trust_env=False)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found
