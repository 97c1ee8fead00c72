"""A real Redis Cluster on loopback: 3 primaries and 3 replicas by default, each a
private ``redis-server --cluster-enabled yes`` in its own directory, joined with
``redis-cli --cluster create``.

A node's cluster bus listens on its port + 10000, so every node gets a free port no
higher than 55535 whose bus port is free too. The node timeout is one second and a
replica always stands for election (validity factor 0), so a killed or stopped primary
is replaced within a few seconds. Every wait is bounded.

    with LocalCluster(tmp_path) as cluster:
        cluster.url                      # redis+cluster://127.0.0.1:p1,...
        cluster.kill(cluster.primary_of(slot))
        new = cluster.wait_failover(port)
        cluster.revive(port)             # back, as a replica of ``new``
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support.ports import free_port
from tests.support.redis import RedisServer, _read_reply, _resp
from tests.support.system import ensure_binary

SLOTS = 16384
BUS_OFFSET = 10000
MAX_PORT = 65535 - BUS_OFFSET
NODE_TIMEOUT_MS = 1000

Ranges = list[tuple[int, int]]


def ask(port: int, *command: str, timeout: float = 1.0) -> str:
    """One command to a node on loopback; its reply (first line, or the bulk) as text."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(_resp(*command))
        return _read_reply(sock.makefile("rb"))


def info_fields(text: str) -> dict[str, str]:
    """``name:value`` lines of INFO or CLUSTER INFO."""
    pairs = (line.partition(":") for line in text.splitlines())
    return {name.strip(): value.strip() for name, sep, value in pairs if sep}


def cluster_port(taken: set[int], attempts: int = 200) -> int:
    """A free port <= 55535 whose cluster bus port (+10000) is free too."""
    for _ in range(attempts):
        port = free_port()
        if port <= MAX_PORT and port not in taken and _bindable(port + BUS_OFFSET):
            taken.add(port)
            return port
    raise RuntimeError(f"no free port pair below {MAX_PORT} in {attempts} tries")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class ClusterNode:
    """One ``redis-server`` in cluster mode (a ``RedisServer`` on a cluster port)."""

    def __init__(self, directory: Path, taken: set[int]) -> None:
        self.directory = directory
        self._taken = taken
        self.server = self._server(cluster_port(taken))

    def _server(self, port: int) -> RedisServer:
        return RedisServer(
            self.directory,
            port=port,
            extra=(
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                # a replica stands for election however long its link has been down
                "--cluster-replica-validity-factor", "0",
                # the first full sync starts at once, not after the default 5 s
                "--repl-diskless-sync-delay", "0",
            ),
        )  # fmt: skip

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        """Start on this port; on another free one when it was taken meanwhile."""
        for attempt in range(3):
            try:
                self.server.start()
                return
            except RuntimeError:
                if "Address already in use" not in self.server.log_text() or attempt == 2:
                    raise
                self.server = self._server(cluster_port(self._taken))


class LocalCluster:
    """``primaries`` primaries with ``replicas`` replicas each, under ``directory``."""

    def __init__(self, directory: Path, primaries: int = 3, replicas: int = 1) -> None:
        if primaries < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 primaries")
        self.directory = Path(directory)
        self.replicas = replicas
        taken: set[int] = set()
        self.nodes = [
            ClusterNode(self.directory / f"node{i}", taken)
            for i in range(primaries * (1 + replicas))
        ]
        self._down: set[int] = set()  # killed or stopped
        self._served: dict[int, Ranges] = {}  # slots a primary served when taken down

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self, timeout: float = 30.0) -> Self:
        try:
            for node in self.nodes:
                node.start()
            self._create(timeout)
            self.wait_ready(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _create(self, timeout: float) -> None:
        cli = ensure_binary("redis-cli", "redis-tools")
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        replicas = ["--cluster-replicas", str(self.replicas)]
        done = subprocess.run(
            [cli, "--cluster", "create", *addresses, *replicas, "--cluster-yes"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            out = (done.stdout + done.stderr).decode(errors="replace")
            raise RuntimeError(f"redis-cli --cluster create failed:\n{out[-3000:]}")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok`` and every live replica's link
        to its primary is up."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            last = self._not_ready() or ""
            if not last:
                return
            time.sleep(0.05)
        raise RuntimeError(f"cluster not ready within {timeout} s: {last}")

    def _not_ready(self) -> str | None:
        for port in self.live_ports():
            try:
                state = info_fields(ask(port, "CLUSTER", "INFO")).get("cluster_state")
                replication = info_fields(ask(port, "INFO", "replication"))
            except OSError as exc:
                return f"{port}: {exc!r}"
            if state != "ok":
                return f"{port}: cluster_state:{state}"
            if replication.get("role") == "slave" and (
                replication.get("master_link_status") != "up"
            ):
                return f"{port}: replica link {replication.get('master_link_status')}"
        return None

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def live_ports(self) -> list[int]:
        return [port for port in self.ports if port not in self._down]

    def primaries(self) -> dict[int, Ranges]:
        """The port of each primary serving slots, with its slot ranges, as a live node
        sees the cluster now (a primary marked failed is left out)."""
        found: dict[int, Ranges] = {}
        for line in self._cluster_nodes().splitlines():
            fields = line.split()
            if len(fields) < 8:
                continue
            flags = fields[2].split(",")
            if "master" not in flags or "fail" in flags:
                continue
            port = int(fields[1].split("@")[0].rpartition(":")[2])
            ranges = [_slot_range(f) for f in fields[8:] if not f.startswith("[")]
            if ranges:
                found[port] = ranges
        return found

    def _cluster_nodes(self) -> str:
        for port in self.live_ports():
            with contextlib.suppress(OSError):
                return ask(port, "CLUSTER", "NODES")
        raise RuntimeError("no live node answers CLUSTER NODES")

    def replicas_of(self, port: int) -> list[int]:
        """The ports of the live replicas of the primary on ``port``."""
        primary = self.node_id(port)
        found: list[int] = []
        for line in self._cluster_nodes().splitlines():
            fields = line.split()
            flags = fields[2].split(",") if len(fields) > 3 else []
            if "slave" in flags and "fail" not in flags and fields[3] == primary:
                found.append(int(fields[1].split("@")[0].rpartition(":")[2]))
        return found

    def node_id(self, port: int) -> str:
        """The cluster's id of the node on ``port`` (CLUSTER MYID)."""
        return ask(port, "CLUSTER", "MYID")

    def primary_of(self, slot: int) -> int:
        """The port of the primary serving ``slot`` now."""
        return _owner(self.primaries(), slot)

    def _node(self, port: int) -> ClusterNode:
        for node in self.nodes:
            if node.port == port:
                return node
        raise LookupError(f"no node of this cluster on port {port}")

    def _taking_down(self, port: int) -> int:
        node = self._node(port)
        served = self.primaries().get(port)
        if served:
            self._served[port] = served
        self._down.add(port)
        pid = node.server.pid
        if pid is None:
            raise RuntimeError(f"node {port} was never started")
        return pid

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port``, as a crash would."""
        self._taking_down(port)
        self._node(port).server.kill()

    def stop(self, port: int) -> None:
        """SIGSTOP: the node hangs, its sockets open (``cont`` resumes it)."""
        os.kill(self._taking_down(port), signal.SIGSTOP)

    def cont(self, port: int) -> None:
        """SIGCONT a node ``stop`` hung."""
        pid = self._node(port).server.pid
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        self._down.discard(port)

    def revive(self, port: int, timeout: float = 30.0) -> None:
        """Start a node ``kill`` took down again, on its port and in its directory (its
        nodes.conf kept, its data not): once failed over, it rejoins as a replica of the
        node promoted in its place. Returns when it is a replica with its link up and
        every live node says ``cluster_state:ok``."""
        node = self._node(port)
        if node.server.running:
            raise ValueError(f"node {port} is running (a stopped one takes ``cont``)")
        node.server.start()  # the port is fixed: never another one
        self._down.discard(port)
        self._served.pop(port, None)
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                replication = info_fields(ask(port, "INFO", "replication"))
            except OSError as exc:
                last = repr(exc)
            else:
                role, link = replication.get("role"), replication.get("master_link_status")
                last = f"{port}: role {role}, link {link}"
                if role == "slave" and link == "up":
                    last = self._not_ready() or ""
                    if not last:
                        return
            time.sleep(0.05)
        raise RuntimeError(f"node {port} did not rejoin as a replica within {timeout} s: {last}")

    def whole(self, timeout: float = 10.0) -> bool:
        """Every node up, none taken down, and the cluster ready within ``timeout`` (a
        shared cluster can serve the next test)."""
        if self._down or not all(node.server.running for node in self.nodes):
            return False
        try:
            self.wait_ready(timeout)
        except RuntimeError:
            return False
        return True

    def flush(self, timeout: float = 10.0) -> None:
        """FLUSHALL on every primary, each followed by a WAIT for its replicas: the
        next test starts on an empty store, as on a cluster of its own."""
        for port in self.primaries():
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
                sock.sendall(
                    _resp("FLUSHALL") + _resp("WAIT", str(self.replicas), str(int(timeout * 1000)))
                )
                reader = sock.makefile("rb")
                flushed, replicated = _read_reply(reader), _read_reply(reader)
            if flushed != "+OK" or replicated != f":{self.replicas}":
                raise RuntimeError(f"flush of {port}: {flushed} {replicated}")

    def wait_failover(self, port: int, timeout: float = 20.0) -> int:
        """The port of the replica promoted in place of the primary ``port`` (killed or
        stopped), once it serves all of that primary's slots and every live node says
        ``cluster_state:ok`` again."""
        served = self._served.get(port)
        if not served:
            raise ValueError(f"node {port} served no slots when it was taken down")
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                now = self.primaries()
                owners = {_owner(now, slot) for start, end in served for slot in (start, end)}
            except (LookupError, OSError, RuntimeError) as exc:
                last = repr(exc)
            else:
                last = f"slots of {port} served by {sorted(owners)}"
                if len(owners) == 1 and port not in owners:
                    last = self._not_ready() or ""
                    if not last:
                        return owners.pop()
            time.sleep(0.05)
        raise RuntimeError(f"no failover of {port} within {timeout} s: {last}")

    def cpu_seconds(self, port: int) -> float:
        """CPU the node has used so far (INFO cpu: user + system)."""
        cpu = info_fields(ask(port, "INFO", "cpu"))
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    def close(self) -> None:
        """Kill every node this cluster started (stopped ones too)."""
        for node in self.nodes:
            node.server.kill()


def _owner(primaries: dict[int, Ranges], slot: int) -> int:
    for port, ranges in primaries.items():
        if any(start <= slot <= end for start, end in ranges):
            return port
    raise LookupError(f"no primary serves slot {slot}")


def _slot_range(text: str) -> tuple[int, int]:
    start, _, end = text.partition("-")
    return int(start), int(end or start)
