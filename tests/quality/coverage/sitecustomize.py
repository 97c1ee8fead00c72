"""Loaded by every Python process of a ``make coverage`` run (this directory is put first
on PYTHONPATH, which the processes the tests start inherit): starts coverage when
``COVERAGE_PROCESS_START`` names the configuration, and saves what it measured every
half second, because the tests end most of their processes with SIGKILL.

A forked process (Celery's prefork pool, where deliveries run) gets a fresh measurement
of its own from coverage (``patch = ["fork"]`` in pyproject.toml), but no thread
survives a fork: the saver is started again in the child, or what the pool ran would
never be written (it leaves by ``os._exit`` or SIGKILL)."""

from __future__ import annotations

import os

if os.environ.get("COVERAGE_PROCESS_START"):
    import contextlib
    import threading
    import time

    import coverage

    def _save_often() -> None:
        while True:
            time.sleep(0.5)
            cov = coverage.Coverage.current()  # after a fork: the child's own
            if cov is not None:
                with contextlib.suppress(Exception):  # never disturb the process measured
                    cov.save()

    def _start_saver() -> None:
        threading.Thread(target=_save_often, name="coverage-saver", daemon=True).start()

    # coverage >= 7.10 may have started already, from its own .pth file
    if coverage.process_startup() or coverage.Coverage.current():
        _start_saver()
        os.register_at_fork(after_in_child=_start_saver)
