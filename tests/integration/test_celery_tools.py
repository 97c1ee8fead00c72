"""Celery's own tools on notify's workers: ``celery -A notify.workers.celery_app
status|inspect`` finds the app (configured from ``NOTIFY_*``), and task events are
switched on by ``NOTIFY_CELERY_TASK_EVENTS``."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import StackFactory
from tests.support.procs import child_env

APP = "notify.workers.celery_app"


def _celery(
    env: dict[str, object], *args: str, timeout: float = 3
) -> subprocess.CompletedProcess[str]:
    celery = str(Path(sys.executable).with_name("celery"))
    return subprocess.run(
        [celery, "-A", APP, *args, "--timeout", str(timeout)],
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_celery_status_and_inspect_see_notify_workers(stack_factory: StackFactory) -> None:
    stack = stack_factory(NOTIFY_CELERY_TASK_EVENTS=1)
    deadline = time.monotonic() + 60
    # a broadcast waits its whole timeout for replies (a local worker answers in
    # milliseconds); one sent before the worker listens gets none, and is sent again
    while "1 node online" not in (status := _celery(stack.env, "status", timeout=1)).stdout:
        assert time.monotonic() < deadline, status.stdout + status.stderr
        time.sleep(0.2)
    found = re.search(r"(\S+@\S+): OK", status.stdout)
    assert found, status.stdout
    # addressed to the node status found, an inspection ends at its reply
    node = found.group(1)
    registered = _celery(stack.env, "inspect", "registered", "--destination", node)
    assert registered.returncode == 0, registered.stderr
    assert "notify.deliver" in registered.stdout
    conf = _celery(stack.env, "inspect", "conf", "--destination", node)
    assert '"worker_send_task_events": true' in conf.stdout, conf.stdout
