"""Health of a dispatcher or worker process: ``/healthz``, ``/readyz`` and ``/metrics``
on a port of its own (NOTIFY_HEALTH_PORT; no server when unset), so an orchestrator can
restart a wedged process and scrape what it does.

- ``/healthz``: 200 while the process makes progress (its loops go round, even if every
  round fails because Redis is away: restarting would not help then); 503 when wedged.
- ``/readyz``: 200 while its work succeeds (Redis answers, the consumer groups exist).
- ``/metrics``: Prometheus text of the process's own counters and the standard
  ``process_*`` and ``python_*`` series.

The server is the standard library's, in a daemon thread: it answers even when the
process's event loop is stuck, which is exactly when it has to say so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)

log = logging.getLogger("notify.health")
STANDARD = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    STANDARD.register(_collector)

Check = Callable[[], tuple[bool, str]]
"""Returns (ok, reason)."""


class Health:
    """The verdicts and numbers a role publishes; its loops feed it."""

    def __init__(self, role: str, *, live: Check, ready: Check) -> None:
        self.role = role
        self._live = live
        self._ready = ready
        self.gauges: dict[str, Callable[[], float]] = {}
        self.help: dict[str, str] = {}

    def gauge(self, name: str, help_: str, read: Callable[[], float]) -> None:
        self.gauges[name] = read
        self.help[name] = help_

    def answer(self, path: str) -> tuple[int, str, bytes]:
        if path == "/healthz":
            return verdict(*self._live())
        if path == "/readyz":
            return verdict(*self._ready())
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4", self.metrics().encode()
        return 404, "text/plain", b"not found\n"

    def metrics(self) -> str:
        """The role's own series, then the standard ``process_*`` and ``python_*`` ones
        of this process (for a worker: its supervisor)."""
        lines: list[str] = []
        for name, read in self.gauges.items():
            full = f"notify_{self.role}_{name}"
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += [f"# HELP {full} {self.help[name]}", f"# TYPE {full} {kind}"]
            lines.append(f"{full} {read():g}")
        return "\n".join(lines) + "\n" + generate_latest(STANDARD).decode()


def verdict(ok: bool, reason: str) -> tuple[int, str, bytes]:
    return (200 if ok else 503), "text/plain", (reason + "\n").encode()


class Loops:
    """When each named loop last went round and last succeeded (monotonic seconds)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.turned: dict[str, float] = {}
        self.succeeded: dict[str, float] = {}
        self.failures: dict[str, int] = {}

    def ok(self, name: str) -> None:
        now = time.monotonic()
        self.turned[name] = self.succeeded[name] = now

    def failed(self, name: str) -> None:
        self.turned[name] = time.monotonic()
        self.failures[name] = self.failures.get(name, 0) + 1

    def age(self, name: str, of: dict[str, float]) -> float:
        return time.monotonic() - of.get(name, self.started)


def serve(health: Health, host: str, port: int) -> ThreadingHTTPServer | None:
    """Answer health requests from a daemon thread until the process ends; None (with
    an error logged) when the port cannot be had: the role's work goes on regardless,
    and an orchestrator probing the port sees the failure."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, kind, body = health.answer(self.path.split("?", 1)[0])
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.send_header("cache-control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds: not worth a line each

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        log.error("no %s health server on %s:%d: %s", health.role, host, port, exc)
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="notify-health", daemon=True).start()
    log.info("%s health on http://%s:%d/healthz", health.role, host, server.server_address[1])
    return server
