"""Processes the benchmarks start: Redis, the notify gateway, the naive peers (SSE:
bench/peer_app.py, socket.io: bench/sio_peer_app.py), and the load side (load generator,
publisher, wrk), each pinned to its CPU with taskset.

The server under test runs alone on CPU 0; everything that makes load (and Redis,
which both sides need) runs on CPU 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
PEER_PYTHON = BENCH / ".peer-venv" / "bin" / "python"
SIO_PYTHON = BENCH / ".sio-venv" / "bin" / "python"
SIO_WS_PATH = "/socket.io/?EIO=4&transport=websocket"
SERVER_CPU = "0"
LOAD_CPU = "1"
# `BENCH_GATEWAY_WORKERS=2 bash bench/run.sh a b d`: notify's gateway as `notify serve
# --workers N`, its processes free to use every CPU (one is not enough for N of them): the
# figures of a multi-process gateway on this machine, load generator and Redis included.
GATEWAY_WORKERS = int(os.environ.get("BENCH_GATEWAY_WORKERS", "1"))
TASKSET = shutil.which("taskset")
SECRET = "bench-secret-" + "x" * 32


def pinned(cpu: str, argv: Sequence[str]) -> list[str]:
    if TASKSET is None or (os.cpu_count() or 1) < 2:
        return list(argv)
    return [TASKSET, "-c", cpu, *argv]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stop(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def http_status(port: int, path: str, timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and every process beneath it (a multi-process gateway)."""
    total = 0.0
    for each in (pid, *descendants(pid)):
        with contextlib.suppress(OSError), open(f"/proc/{each}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        return found
    for child in children:
        found += [child, *descendants(child)]
    return found


def runq_wait_seconds(pid: int) -> float:
    """Time the main thread sat runnable while others had its CPU (noise, not work)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[Any]
    stream_path: str  # with {channel}
    ws_path: str = ""  # the WebSocket endpoint, when the server has one
    ws_args: tuple[str, ...] = ()  # what else the WebSocket load generator needs

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(workdir), "--loglevel", "warning"]
    log = open(workdir / f"redis-{port}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(pinned(LOAD_CPU, argv), stdout=log, stderr=subprocess.STDOUT)
    try:

        def ping() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")

        wait_until(ping, 10, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)
        log.close()


@contextlib.contextmanager
def notify_gateway(redis_url: str, workdir: Path, **env: str) -> Iterator[Server]:
    port = free_port()
    environ = {
        **os.environ,
        "NOTIFY_REDIS_URL": redis_url,
        "NOTIFY_JWT_SECRET": SECRET,
        **{f"NOTIFY_{k.upper()}": v for k, v in env.items()},
    }
    argv = [PYTHON, "-m", "notify", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if GATEWAY_WORKERS > 1:
        argv += ["--workers", str(GATEWAY_WORKERS)]
    else:
        argv = pinned(SERVER_CPU, argv)
    log = open(workdir / f"notify-{port}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, env=environ, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: http_status(port, "/readyz") == 200, 30, "notify gateway")
        auth = "token=" + token()
        yield Server("notify", port, proc, "/v1/stream?channel={channel}&" + auth, "/v1/ws?" + auth)
    finally:
        stop(proc)
        log.close()


@contextlib.contextmanager
def peer_gateway(redis_url: str, workdir: Path) -> Iterator[Server]:
    port = free_port()
    argv = [str(PEER_PYTHON), "-m", "uvicorn", "peer_app:app", "--app-dir", str(BENCH)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop"]
    argv += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    environ = {**os.environ, "PEER_REDIS_URL": redis_url}
    log = open(workdir / f"peer-{port}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        pinned(SERVER_CPU, argv), env=environ, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_until(lambda: http_status(port, "/healthz") == 200, 30, "peer gateway")
        yield Server("peer", port, proc, "/stream?channel={channel}")
    finally:
        stop(proc)
        log.close()


@contextlib.contextmanager
def sio_peer_gateway(redis_url: str, workdir: Path) -> Iterator[Server]:
    """The naive socket.io peer (python-socketio + AsyncRedisManager under uvicorn)."""
    port = free_port()
    argv = [str(SIO_PYTHON), "-m", "uvicorn", "sio_peer_app:app", "--app-dir", str(BENCH)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop"]
    argv += ["--http", "httptools", "--ws", "websockets-sansio"]
    argv += ["--no-access-log", "--log-level", "warning"]
    environ = {**os.environ, "SIO_PEER_REDIS_URL": redis_url}
    log = open(workdir / f"sio-peer-{port}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        pinned(SERVER_CPU, argv), env=environ, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_until(lambda: http_status(port, "/healthz") == 200, 30, "socket.io peer")
        yield Server("sio", port, proc, "", SIO_WS_PATH, ("--socketio",))
    finally:
        stop(proc)
        log.close()


def token() -> str:
    from notify.auth import mint

    return mint(SECRET, "bench", publish=[">"], subscribe=[">"])


class Lines:
    """A child's stdout read by a thread, so the caller can wait with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def expect(self, tag: str, timeout: float) -> str:
        """The payload of the next line starting with ``tag``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {tag} line within {timeout:.0f} s")
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"process ended before printing {tag}")
            if line.startswith(tag + " "):
                return line[len(tag) + 1 :]


def spawn_load(
    script: str, args: Sequence[str], *, stdin: bool = False, python: str | Path = PYTHON
) -> tuple[subprocess.Popen[str], Lines]:
    """``script`` on the load CPU, its output read line by line (``stdin``: a pipe to it,
    for a child that waits for a go; ``python``: another venv's, for a peer's publisher)."""
    proc = subprocess.Popen(
        pinned(LOAD_CPU, [str(python), str(BENCH / script), *args]),
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    return proc, Lines(proc.stdout)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 2)


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed (as the gateway runs), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def load_side() -> None:
    """Put this process on the load CPU, like the children it starts, and print the
    load average before the run."""
    with contextlib.suppress(OSError, ValueError):
        if pinned(LOAD_CPU, []):
            os.sched_setaffinity(0, {int(LOAD_CPU)})
    print(f"load before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


def emit(tag: str, payload: dict[str, Any]) -> None:
    """One tagged JSON line for the parent process (``Lines.expect``)."""
    print(tag, json.dumps(payload), flush=True)
