"""notify processes (``python -m notify …``) run for real, as a deployment would.

Each process runs in its own session so that ``kill`` reaches every child it forked
(uvicorn workers, the Redis that ``notify dev`` starts), and nothing outlives the test.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Self

import httpx

from tests.support.ports import free_port

_live: weakref.WeakSet[Proc] = weakref.WeakSet()


def child_env(extra: Mapping[str, object] | None = None) -> dict[str, str]:
    """``os.environ`` without the parent's ``NOTIFY_*`` settings, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")}
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in (extra or {}).items():
        env[key] = str(value)
    return env


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``: its children (forked by any of its threads), theirs,
    and so on, from /proc; empty once ``pid`` has ended."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        for kid in kids:
            found += [kid, *descendants(kid)]
    return found


class Proc:
    def __init__(
        self,
        args: Sequence[str],
        *,
        directory: Path,
        env: Mapping[str, object] | None = None,
        name: str = "notify",
    ) -> None:
        self.args = list(args)
        self.directory = Path(directory)
        self.env = dict(env or {})
        self.name = name
        self.log_path = self.directory / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "notify", *self.args]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def start(self) -> Self:
        """Spawn the process; may be called again once the previous one has exited."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._reap()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"--- $ {' '.join(self.command)}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            self.command,
            cwd=self.directory,
            env=child_env(self.env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _live.add(self)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the process and everything it started; on SIGKILL, wait for
        the process to be gone."""
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        if sig == signal.SIGKILL:
            proc.wait()
            self._reap()

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout`` for a clean exit, SIGKILL otherwise; the exit
        code (negative for a signal)."""
        proc = self._proc
        if proc is None:
            raise RuntimeError(f"{self.name} was never started")
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        code = self.wait(timeout)
        self.kill()  # whatever the process left behind in its session
        return code if code is not None else -signal.SIGKILL

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if the process is still running after ``timeout``."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout)
        return self._proc.poll()

    def wait_http_ready(self, url: str, timeout: float = 20.0) -> None:
        """Poll ``url`` until it answers 200; fails early, with the log, if the process
        exits."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if not self.running:
                    raise RuntimeError(
                        f"{self.name} exited with {self.returncode} before {url} was ready:\n"
                        + self.log_tail()
                    )
                try:
                    response = client.get(url)
                except httpx.TransportError as exc:
                    last = repr(exc)
                else:
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}"
                time.sleep(0.05)
        raise RuntimeError(
            f"{self.name}: {url} not ready after {timeout} s ({last}):\n" + self.log_tail()
        )

    def log_text(self) -> str:
        if self._log is not None and not self._log.closed:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def _reap(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.returncode}"
        return f"<{type(self).__name__} {self.name} pid={self.pid} {state}>"


class Gateway(Proc):
    """``notify serve`` on a free loopback port, ready when ``GET /healthz`` says 200."""

    def __init__(
        self,
        *,
        redis_url: str,
        jwt_secret: str,
        directory: Path,
        env: Mapping[str, object] | None = None,
        port: int | None = None,
        name: str = "gateway",
        ready_timeout: float = 30.0,
        serve_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__(
            [],
            directory=directory,
            env={"NOTIFY_REDIS_URL": redis_url, "NOTIFY_JWT_SECRET": jwt_secret, **(env or {})},
            name=name,
        )
        self.host = "127.0.0.1"
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.ready_timeout = ready_timeout
        self.serve_args = serve_args  # more `notify serve` options (``--access-log``)

    @property
    def command(self) -> list[str]:
        return [
            *super().command,
            *("serve", "--host", self.host, "--port", str(self.port)),
            *self.serve_args,
        ]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> Self:
        """Start and wait for ``/healthz``; retries on a fresh port if the first one was
        taken meanwhile (a restart keeps its port, as clients expect)."""
        for attempt in range(3):
            super().start()
            try:
                self.wait_http_ready(self.url("/healthz"), self.ready_timeout)
                return self
            except RuntimeError:
                taken = "address already in use" in self.log_text().lower()
                self.kill()
                if self._fixed_port or not taken or attempt == 2:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def restart(self, sig: int = signal.SIGKILL) -> Self:
        """Kill with ``sig`` (a crash by default) and start again on the same port."""
        self.kill(sig)
        if sig != signal.SIGKILL:
            self.wait(10.0)
            self.kill()
        fixed, self._fixed_port = self._fixed_port, True
        try:
            return self.start()
        finally:
            self._fixed_port = fixed


@atexit.register
def kill_all() -> None:
    """Kill every process still running (a last resort at interpreter exit)."""
    for proc in list(_live):
        proc.kill()
