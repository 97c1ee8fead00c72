"""Loaded by every Python process of a ``make coverage`` run (this directory is put first
on PYTHONPATH, which the processes the tests start inherit): starts coverage when
``COVERAGE_PROCESS_START`` names the configuration, and saves what it measured every
half second, because the tests end most of their processes with SIGKILL."""

from __future__ import annotations

import os

if os.environ.get("COVERAGE_PROCESS_START"):
    import contextlib
    import threading
    import time

    import coverage

    # coverage >= 7.10 may have started already, from its own .pth file
    _cov = coverage.process_startup() or coverage.Coverage.current()

    if _cov is not None:

        def _save_often(cov: coverage.Coverage) -> None:
            while True:
                time.sleep(0.5)
                with contextlib.suppress(Exception):  # never disturb the process measured
                    cov.save()

        threading.Thread(target=_save_often, args=(_cov,), daemon=True).start()
