"""`notify serve`: uvicorn, ending live streams before it stops.

uvicorn waits for open responses before running the app's shutdown, and an event
stream never ends by itself; so the server first tells every hub of the process to
close its streams (clients then resume on another gateway with their last id).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import uvicorn
from prometheus_client.multiprocess import mark_process_dead

from notify.api.httpproto import GatewayProtocol, timeout_response, too_large_response
from notify.api.hub import ACTIVE
from notify.api.metrics import MULTIPROC_ENV
from notify.api.wsconn import FastWebSocketProtocol
from notify.logs import LogFormat, logging_config
from notify.redact import redact
from notify.supervise import Child, Supervisor

log = logging.getLogger("notify.api.server")


class RedactTokens(logging.Filter):
    """Query tokens (EventSource cannot send headers) must never reach a log line:
    uvicorn's access and WebSocket lines carry the raw path with its query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def log_config(fmt: LogFormat = "text", level: str = "INFO") -> dict[str, Any]:
    """The gateway's logging (uvicorn's loggers included), with query tokens redacted."""
    config = logging_config("gateway", fmt, level)
    config["filters"] = {"redact": {"()": "notify.api.server.RedactTokens"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    return config


GC_THRESHOLD = (10_000, 20, 20)
"""Collector thresholds for a gateway: see :meth:`GatewayServer.startup`."""


class GatewayServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start, then set aside for the collector everything built so far.

        A batch of 1,000 events allocates tens of thousands of short-lived containers
        (parsed JSON, drafts, entries read back), and with the default threshold of
        700 the collector ran dozens of times per request, each pass also walking the
        app's long-lived objects: measured, a third of a busy gateway's time
        (bench/RESULTS.md). Frozen objects are never walked again, and the larger
        first-generation threshold means a pass every 10,000 allocations instead of
        every 700 (acyclic garbage is freed by reference count either way).
        """
        await super().startup(sockets=sockets)
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLD)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for hub in list(ACTIVE):
            hub.close_all("shutdown")
        await super().shutdown(sockets=sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Handle SIGINT/SIGTERM as uvicorn does, without raising them again afterwards.

        uvicorn re-raises the signal once its graceful shutdown is done, so `serve`
        ended with -15 after SIGTERM, and after SIGINT (Ctrl-C on `make run`) printed a
        KeyboardInterrupt traceback. A shutdown that completed is a clean exit: 0.
        """
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


def create() -> object:
    """The ASGI app, built from the environment (uvicorn factory)."""
    from notify.api.app import create_app
    from notify.api.fastpath import FastPaths
    from notify.settings import load

    return FastPaths(create_app(load()))


def listen_socket(host: str, port: int, *, share: bool, reuse_addr: bool = True) -> socket.socket:
    """A socket bound to ``host:port``, or :class:`SystemExit` saying why not.

    Only the processes of one ``serve --workers`` share a port (``share``: SO_REUSEPORT,
    the kernel spreads connections among them). A lone gateway binds without it, so a
    second gateway started on a port already served fails with "address already in
    use" instead of silently taking a share of the first one's connections."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    if reuse_addr:  # a restart may bind while the last run's connections linger
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if share:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"notify: cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def serve(
    host: str, port: int, workers: int, *, access_log: bool = False, shared: bool = False
) -> None:
    """One process per worker, each with its own hub, sharing the port via SO_REUSEPORT
    (the kernel spreads connections); the parent restarts a worker that dies.
    ``shared``: this process is one of those workers."""
    if workers > 1:
        supervise(host, port, workers, access_log)
        return
    from notify.settings import load

    settings = load()
    GatewayProtocol.read_timeout = settings.request_timeout_seconds
    GatewayProtocol.max_head_bytes = settings.max_header_bytes
    GatewayProtocol.max_headers = settings.max_headers
    GatewayProtocol.timeout_answer = timeout_response(settings.problem_base)
    GatewayProtocol.too_large_answer = too_large_response(settings.problem_base)
    config = uvicorn.Config(
        "notify.api.server:create",
        factory=True,
        host=host,
        port=port,
        loop="uvloop",
        http=GatewayProtocol,
        ws=FastWebSocketProtocol,
        log_config=log_config(settings.log_format, settings.log_level),
        ws_max_size=1024 * 1024,
        # event frames go out uncompressed anyway (built once for every socket: see
        # notify.api.wsconn); negotiating deflate would only keep a compressor and a
        # decompressor (tens of KiB) alive per socket for the few control replies
        ws_per_message_deflate=False,
        lifespan="on",
        access_log=access_log,
        timeout_graceful_shutdown=5,
        backlog=4096,
        proxy_headers=True,
    )
    sock = listen_socket(host, port, share=shared)
    sock.set_inheritable(True)
    GatewayServer(config).run(sockets=[sock])


def supervise(host: str, port: int, workers: int, access_log: bool) -> None:
    # The port must be free (a bind without SO_REUSEPORT fails against any socket on
    # it), and is then held for this run by a bound socket that never listens, so never
    # gets a connection: it has SO_REUSEPORT, which the workers join, and no
    # SO_REUSEADDR, which keeps every bind but a worker's off the port even while no
    # worker is alive. Only where the last run's connections linger in TIME_WAIT
    # without SO_REUSEPORT (an earlier lone `serve`) must it take SO_REUSEADDR to bind:
    # then the port is held only while a worker listens.
    listen_socket(host, port, share=False).close()
    try:
        hold = listen_socket(host, port, share=True, reuse_addr=False)
    except SystemExit:
        hold = listen_socket(host, port, share=True)
    try:
        _supervise(host, port, workers, access_log)
    finally:
        hold.close()


def _supervise(host: str, port: int, workers: int, access_log: bool) -> None:
    argv = [sys.executable, "-m", "notify", "serve", "--host", host, "--port", str(port)]
    argv += ["--shared-port"]  # its workers join the port this process holds
    if access_log:
        argv.append("--access-log")
    # the workers' metrics files, for this run only: counters from an earlier run
    # must not be added to this one's
    metrics_dir = tempfile.mkdtemp(prefix="notify-metrics-")
    env = {**os.environ, MULTIPROC_ENV: metrics_dir}

    def exited(child: Child, why: str) -> None:
        # its live gauges (open streams) go; its counters stay counted
        mark_process_dead(child.pid, metrics_dir)  # type: ignore[no-untyped-call]
        pause = gateways.respawn(child)
        log.warning("gateway worker %d %s; restarting in %.1f s", child.pid, why, pause)

    gateways = Supervisor(exited, every=0.5, grace=15)
    try:
        for _ in range(workers):
            gateways.start(Child("gateway worker", argv, env))
        gateways.run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
