"""A real ``redis-server`` on a free loopback port, in its own directory.

Tests never use the machine's Redis: each ``RedisServer`` is a private process whose
persistence is configurable, and which tests may stop, kill and restart (same port,
same directory, so an append-only file survives).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
import weakref
from pathlib import Path
from typing import BinaryIO, Literal, Self

from tests.support.ports import free_port
from tests.support.system import ensure_binary

Fsync = Literal["always", "everysec", "no"]

_live: weakref.WeakSet[RedisServer] = weakref.WeakSet()


class RedisServer:
    def __init__(
        self,
        directory: Path,
        *,
        appendonly: bool = False,
        appendfsync: Fsync = "everysec",
        password: str | None = None,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.extra_args = extra_args  # e.g. ("--replicaof", "127.0.0.1", "6380")
        self.directory = Path(directory)
        self.appendonly = appendonly
        self.appendfsync: Fsync = appendfsync
        self.password = password
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.log_path = self.directory / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        args = [
            ensure_binary("redis-server", "redis-server"),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        return args + list(self.extra_args)

    def start(self, timeout: float = 10.0) -> Self:
        """Start and wait until it answers PING; a fresh port is tried when the first one
        turns out to be taken (never on ``restart``, which must keep its port)."""
        if self.running:
            raise RuntimeError(f"redis-server already running on port {self.port}")
        self.directory.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self._spawn()
            try:
                self.wait_ready(timeout)
                return self
            except RuntimeError:
                taken = "Address already in use" in self.log_text()
                if self.running or not taken or self._fixed_port or attempt == 2:
                    self.kill()
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        self._proc = subprocess.Popen(
            self.command(),
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _live.add(self)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Until PING answers PONG (not LOADING) or the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"redis-server exited early:\n{self.log_text()[-2000:]}")
            try:
                last = self._probe()
            except OSError as exc:
                last = repr(exc)
            if last == "ready":
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} not ready: {last}")

    def _probe(self) -> str:
        """``ready`` when this very process (not another on the port) answers PING."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
            reader = sock.makefile("rb")
            if self.password:
                sock.sendall(_resp("AUTH", self.password))
                auth = _read_reply(reader)
                if not auth.startswith("+OK"):
                    return auth
            sock.sendall(_resp("PING"))
            pong = _read_reply(reader)
            if not pong.startswith("+PONG"):
                return pong
            sock.sendall(_resp("INFO", "server"))
            info = _read_reply(reader)
            if f"process_id:{self.pid}\r\n" not in info:
                return f"another server answers on port {self.port}"
            return "ready"

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown (SIGTERM: Redis flushes the AOF) and wait; SIGKILL after
        ``timeout``."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL, as a crash would; whatever is not yet on disk is lost."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart(self, timeout: float = 10.0, *, graceful: bool = True) -> Self:
        """Stop (or kill) and start again on the same port and directory."""
        if graceful:
            self.stop()
        else:
            self.kill()
        self._fixed_port, fixed = True, self._fixed_port
        try:
            return self.start(timeout)
        finally:
            self._fixed_port = fixed

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.url} {state}>"


def _resp(*parts: str) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        raw = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def _read_reply(reader: BinaryIO) -> str:
    """One RESP2 simple, error or bulk reply, as text."""
    line = reader.readline()
    if line.startswith(b"$"):
        size = int(line[1:])
        return "" if size < 0 else reader.read(size + 2)[:size].decode(errors="replace")
    return line.decode(errors="replace").strip()


@atexit.register
def kill_all() -> None:
    """Kill every server still running (a last resort at interpreter exit)."""
    for server in list(_live):
        server.kill()
