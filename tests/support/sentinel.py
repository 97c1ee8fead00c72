"""A real Sentinel deployment on loopback: a primary, a replica and three sentinels
(``redis-server sentinel.conf --sentinel``), each a private process on a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

from tests.support.ports import free_port
from tests.support.redis import RedisServer, _read_reply, _resp
from tests.support.system import ensure_binary

SERVICE = "notifyprimary"
DOWN_AFTER_MS = 1000
# a full sync starts at once, not after the default 5 s (a restarted or new replica
# would leave WAIT unsatisfied that long)
NO_SYNC_DELAY = ("--repl-diskless-sync-delay", "0")


def ask(port: int, *command: str, timeout: float = 1.0) -> str:
    """One command to a Redis or sentinel on loopback; its first reply line as text."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(_resp(*command))
        return _read_reply(sock.makefile("rb"))


class SentinelServer:
    def __init__(self, directory: Path, primary_port: int, quorum: int = 2) -> None:
        self.directory = directory
        self.port = free_port()
        self.primary_port = primary_port
        self.quorum = quorum
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.directory}\n"
            f"logfile {self.directory / 'sentinel.log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} 4000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        self._proc = subprocess.Popen(
            [ensure_binary("redis-server", "redis-server"), str(conf), "--sentinel"],
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if ask(self.port, "PING").startswith("+PONG"):
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"sentinel on port {self.port} did not start")

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait()


class SentinelDeployment:
    """``primary``, ``replica`` and three ``sentinels``; ``url`` is notify's
    ``redis+sentinel://`` URL for it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.primary = RedisServer(directory / "primary", appendonly=True, extra=NO_SYNC_DELAY)
        self.replica: RedisServer | None = None
        self.sentinels: list[SentinelServer] = []

    def start(self) -> Self:
        self.primary.start()
        self.replica = RedisServer(
            self.directory / "replica",
            appendonly=True,
            extra=(*NO_SYNC_DELAY, "--replicaof", "127.0.0.1", str(self.primary.port)),
        ).start()
        self.wait_replicated()
        for i in range(3):
            self.sentinels.append(
                SentinelServer(self.directory / f"sentinel{i}", self.primary.port).start()
            )
        # each sentinel must have found the replica and the other sentinels, or a
        # failover could not elect a leader nor promote anyone
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(self._sees_everyone(s) for s in self.sentinels):
                return self
            time.sleep(0.1)
        raise RuntimeError("sentinels did not discover each other and the replica")

    def _sees_everyone(self, sentinel: SentinelServer) -> bool:
        with contextlib.suppress(OSError):
            info = ask(sentinel.port, "INFO", "sentinel")
            return f"slaves=1,sentinels={len(self.sentinels)}" in info
        return False

    def wait_replicated(self, timeout: float = 10.0) -> None:
        """Until the replica has had its first sync and its link is up."""
        assert self.replica is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if "master_link_status:up" in ask(self.replica.port, "INFO", "replication"):
                    return
            time.sleep(0.05)
        raise RuntimeError("the replica did not connect")

    def restart_as_replica(self, server: RedisServer, primary_port: int) -> None:
        """Start a killed ``server`` again (same port, same directory) as a replica of
        ``primary_port``, and wait until its link is up: what the sentinels make of an
        old primary that comes back, but without their wait (they reconfigure it only
        once it has been up 8 s and they have read its INFO, 10 s apart)."""
        server.extra = (*NO_SYNC_DELAY, "--replicaof", "127.0.0.1", str(primary_port))
        server.restart(graceful=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if "master_link_status:up" in ask(server.port, "INFO", "replication"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{server} did not sync from {primary_port}")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def primary_port(self) -> int:
        """The port the sentinels name as primary now."""
        reply = ask_lines(self.sentinels[0].port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(reply[1])

    def kill(self) -> None:
        for sentinel in self.sentinels:
            sentinel.kill()
        for server in (self.primary, self.replica):
            if server is not None:
                server.kill()


def ask_lines(port: int, *command: str, timeout: float = 1.0) -> list[str]:
    """A command whose reply is an array of bulk strings."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(_resp(*command))
        reader = sock.makefile("rb")
        head = reader.readline()
        if not head.startswith(b"*"):
            return [head.decode().strip()]
        out: list[str] = []
        for _ in range(int(head[1:])):
            size = int(reader.readline()[1:])
            out.append(reader.read(size + 2)[:size].decode())
        return out
