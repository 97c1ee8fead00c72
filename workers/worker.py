"""``notify worker``: a supervised Celery worker (prefork) consuming delivery batches.

The Celery worker runs in a child process watched by this one. Celery on Redis has
been seen to exit after a broker reconnect ("Unrecoverable error" in kombu while it
restores unacknowledged messages; it happened here in the chaos soak) and, by other
users' reports, to stay up without consuming. So liveness is judged by consumption,
not by the process being there: every task start touches a progress file, and when the
queue holds work that nobody has started for ``NOTIFY_WORKER_STALL_SECONDS``, the
worker is killed and started again; a worker that exits is started again at once (with
a growing pause if it keeps failing). Deliveries a killed worker held are not lost:
their leases lapse within a heartbeat TTL and the sweeper re-sends them. With
NOTIFY_HEALTH_PORT set, the supervisor answers /healthz, /readyz and /metrics.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from celery.signals import (
    after_setup_logger,
    task_prerun,
    task_received,
    worker_process_init,
    worker_ready,
)
from celery.worker.request import Request

from notify.logs import configure, json_lines_only
from notify.mail import prepare_templates
from notify.redis.heartbeat import LeaseKeeper, process_name
from notify.settings import Settings, load
from notify.smtpurl import parse_sender
from notify.supervise import Child, Supervisor, die_with_parent
from notify.workers import health
from notify.workers.celery_app import DELIVER, QUEUE, create_app
from notify.workers.tasks import register

log = logging.getLogger("notify.worker")
CHECK_EVERY = 1.0
STARTING_SECONDS = 60.0


def run(settings: Settings, concurrency: int) -> None:
    """Supervise a Celery worker until SIGTERM (warm shutdown) or SIGINT."""
    # a template that cannot render stops the worker now, with the setting named
    prepare_templates(settings.email_templates, parse_sender(settings.email_from))
    with tempfile.TemporaryDirectory(prefix="notify-worker-") as tmp:
        Watch(settings, concurrency, Path(tmp) / "progress").run()


class Watch:
    """The Celery worker, kept by a :class:`Supervisor` and judged by its consumption:
    the progress file it touches at each task start."""

    def __init__(self, settings: Settings, concurrency: int, progress: Path) -> None:
        self.settings = settings
        self.progress = progress
        self.stall = settings.worker_stall_seconds
        self.celery = Child(
            "celery worker",
            [
                sys.executable,
                "-m",
                "notify.workers.worker",
                "--concurrency",
                str(concurrency),
                "--progress",
                str(progress),
            ],
        )
        # SIGTERM is Celery's warm shutdown: the tasks it runs get a lease's time
        self.supervisor = Supervisor(
            self.exited, every=CHECK_EVERY, grace=settings.delivery_lease_seconds + 5
        )
        self.backlog = Backlog(settings)
        self.ticked = time.monotonic()
        self.queued: int | None = 0
        self.last_progress = time.monotonic()
        self.waiting_since: float | None = None  # work queued and nothing started since
        self.fresh_start()
        self.seen = self.started_mtime

    def fresh_start(self) -> None:
        """Forget the progress of the Celery worker before this one: the file's next
        change is the new one's first sign (it touches it once ready to consume)."""
        self.consuming = False
        self.waiting_since = None
        self.progress.touch()
        self.started_mtime = self.progress.stat().st_mtime

    def run(self) -> None:
        if self.settings.health_port is not None:
            health.serve(self.health(), self.settings.health_host, self.settings.health_port)
        self.supervisor.start(self.celery)
        self.supervisor.run(self.tick)

    def exited(self, child: Child, why: str) -> None:
        self.fresh_start()
        pause = self.supervisor.respawn(child)
        log.warning("celery worker %s; starting it again in %.1f s", why, pause)

    def tick(self) -> None:
        """Kill the Celery worker when queued work waits too long for a task to start."""
        self.ticked = time.monotonic()
        if not self.celery.running():  # starting again soon
            return
        mtime = self.progress.stat().st_mtime
        queued = self.queued = self.backlog.size()
        if mtime != self.seen:
            self.seen, self.waiting_since = mtime, None
            self.last_progress = time.monotonic()
            self.consuming = mtime != self.started_mtime
        elif not queued:  # idle, or Redis unreachable: nothing to judge
            self.waiting_since = None
        elif self.waiting_since is None:
            self.waiting_since = time.monotonic()
        elif time.monotonic() - self.waiting_since > self.limit():
            why = f"started no task for {self.stall:g} s with {queued} batches queued"
            self.supervisor.kill(self.celery, why)

    def limit(self) -> float:
        """How long queued work may wait: a Celery worker still starting (not consuming
        yet) gets at least STARTING_SECONDS, or a busy machine would restart it forever."""
        return self.stall if self.consuming else max(self.stall, STARTING_SECONDS)

    def health(self) -> health.Health:
        def live() -> tuple[bool, str]:
            if time.monotonic() - self.ticked > 10 * CHECK_EVERY + 5:
                return False, "wedged: the supervisor stopped checking its worker"
            return True, "ok"

        def ready() -> tuple[bool, str]:
            if not self.celery.running():
                return False, "not ready: the celery worker is not running"
            if not self.consuming:
                return False, "starting: the celery worker is not consuming yet"
            if self.queued is None:
                return False, "not ready: Redis does not answer"
            return True, "ready"

        h = health.Health("worker", live=live, ready=ready)
        h.gauge("restarts_total", "Celery worker restarts.", lambda: self.celery.restarts)
        h.gauge("backlog", "Delivery batches waiting in the broker queue.", self.backlog_gauge)
        h.gauge(
            "seconds_since_task",
            "Seconds since a delivery task last started (or the worker started).",
            lambda: time.monotonic() - self.last_progress,
        )
        return h

    def backlog_gauge(self) -> float:
        return float(self.queued) if self.queued is not None else float("nan")


class Backlog:
    """How many delivery batches wait in the broker queue (None when the broker does not
    answer: the worker is then not ready), asked of the broker itself (a passive
    declare), whichever broker it is."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.timeout = max(1, round(settings.redis_timeout_seconds))

    def size(self) -> int | None:
        try:
            with self.app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, timeout=self.timeout)
                channel: Any = conn.default_channel
                if hasattr(channel, "_size"):
                    # kombu's Redis transport: its passive declare does not see the
                    # queue under the key prefix, but its size does
                    return int(channel._size(QUEUE))
                declared = channel.queue_declare(QUEUE, passive=True)
                return int(declared.message_count)
        except Exception:  # any broker failure: nothing to judge now
            return None


PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")
"""Celery's "Task … received" and "Task … succeeded" lines: two INFO lines per task, at
thousands of tasks a second. The delivery log records every attempt; failures still log."""


def quiet_per_task_lines(**_: Any) -> None:
    for name in PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def delivery_ids(request: Any) -> list[str]:
    return [str(i) for i in request.args[0]]


class HeldRequest(Request):
    """A delivery task as the worker's main process holds it: received (its deliveries
    reserved, see ``LeaseKeeper.reserve``) until it is acknowledged or rejected, which
    happens here, in this process, however the task ended. A task that failed before
    claiming its deliveries (Redis failing over, say) must not keep them reserved for
    as long as this process lives: let go, they fall due within a heartbeat TTL."""

    keeper: LeaseKeeper | None = None

    def acknowledge(self) -> None:
        super().acknowledge()
        self._let_go()

    def reject(self, requeue: bool = False) -> None:
        super().reject(requeue)
        self._let_go()

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        keeper = HeldRequest.keeper
        if keeper is not None:
            with contextlib.suppress(Exception):  # a task of another shape
                keeper.fall_due(delivery_ids(self))

    def _let_go(self) -> None:
        keeper = HeldRequest.keeper
        if keeper is not None:
            with contextlib.suppress(Exception):  # a task of another shape
                keeper.unreserve(delivery_ids(self))


def run_celery(settings: Settings, concurrency: int, progress: str) -> None:
    """The supervised child: a Celery worker in this process."""
    app = create_app(settings)
    register(app, settings)

    def touch(**_: Any) -> None:
        with contextlib.suppress(OSError):
            os.utime(progress)

    task_prerun.connect(touch, weak=False)
    # deliveries received but not yet claimed fall due soon after this process dies
    keeper = LeaseKeeper(
        settings.redis_url,
        process_name(),
        settings.heartbeat_seconds,
        max_reserve_s=settings.delivery_lease_seconds,
    )
    worker_ready.connect(lambda **_: keeper.start(), weak=False)

    def reserve(request: Any = None, **_: Any) -> None:
        with contextlib.suppress(Exception):  # a task of another shape: nothing to keep
            keeper.reserve(delivery_ids(request))

    task_received.connect(reserve, weak=False)
    HeldRequest.keeper = keeper
    app.tasks[DELIVER].Request = HeldRequest  # type: ignore[assignment]  # a class does too
    worker_ready.connect(touch, weak=False)  # the supervisor's sign that it consumes
    after_setup_logger.connect(quiet_per_task_lines, weak=False)
    # pool processes go with the worker: none is left behind when it is killed
    worker_process_init.connect(lambda **_: die_with_parent(), weak=False)
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            f"--queues={QUEUE}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--hostname=notify-{os.getpid()}@%h",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m workers.worker")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--progress", help="file touched at each task start (supervised)")
    args = parser.parse_args()
    settings = load()
    configure("worker", settings.log_format, settings.log_level)
    if args.progress:
        if settings.log_format == "json":
            json_lines_only("worker")  # Celery prints its banner and shutdown notices
        run_celery(settings, args.concurrency, args.progress)
    else:
        run(settings, args.concurrency)


if __name__ == "__main__":
    main()
