"""Loaded by every Python process of a measured run (`make test`, `make coverage`: this
directory is put first on PYTHONPATH, which the processes the tests start inherit):
starts coverage when ``COVERAGE_PROCESS_START`` names the configuration, and writes what
it measured to the process's data file every half second, because the tests end most of
their processes with SIGKILL.

What is written every half second is only the lines measured since the last time (the
collector's flush, 0.1 ms). A full ``Coverage.save()`` also lists the unexecuted files
and hashes and renames the data file (7 ms, so 15 ms of every second of a live process,
and about 0.1 s more CPU per gateway start-up); the processes that exit normally still
make one at exit, which is all the report needs.

A forked process (Celery's prefork pool, where deliveries run) gets a fresh measurement
of its own from coverage (``patch = ["fork"]`` in pyproject.toml), but no thread
survives a fork: the saver is started again in the child, or what the pool ran would
never be written (it leaves by ``os._exit`` or SIGKILL).

A write from the saver must never run during coverage's own save: coverage closes every
connection to the data file in a save, and a process writing from the saver thread while
coverage's exit (or SIGTERM) handler saved died of a segmentation fault (seen: 2 exits
in 30 of ``notify serve`` refusing its configuration). Both take one lock, and the saver
is stopped and joined before coverage's exit handler runs (``atexit`` runs the handlers
registered last first; after a fork, the child's coverage registers its own)."""

from __future__ import annotations

import importlib.util
import os

# (a Python without coverage has nothing to measure)
if os.environ.get("COVERAGE_PROCESS_START") and importlib.util.find_spec("coverage"):
    import atexit
    import contextlib
    import threading
    from collections.abc import Callable
    from typing import Any

    import coverage

    _WRITE_EVERY = 0.5  # seconds
    _lock = threading.RLock()  # reentrant: a SIGTERM may arrive during the exit save
    _stop = threading.Event()
    _saver: threading.Thread | None = None

    def _serialised(cov: coverage.Coverage) -> coverage.Coverage:
        """``cov`` with a ``save`` that takes the lock (coverage's exit and SIGTERM
        handlers call ``self.save()``, so they take it too)."""
        if not getattr(cov, "_notify_serialised", False):
            save = cov.save

            def locked_save() -> None:
                with _lock:
                    save()

            attributes: Any = cov
            attributes.save = locked_save
            attributes._notify_serialised = True
        return cov

    def _writer(cov: coverage.Coverage) -> Callable[[], object]:
        """The collector's flush (private: a coverage without one gets ``save``)."""
        collector = getattr(cov, "_collector", None)
        flush = getattr(collector, "flush_data", None)
        return flush if callable(flush) else cov.save

    def _write_often(stop: threading.Event) -> None:
        while not stop.wait(_WRITE_EVERY):
            cov = coverage.Coverage.current()
            if cov is not None:
                with contextlib.suppress(Exception), _lock:  # never disturb the process
                    _writer(cov)()

    def _start_saver() -> None:
        global _lock, _stop, _saver
        # after a fork the parent's saver may have held the lock: the child's are new
        _lock, _stop = threading.RLock(), threading.Event()
        current = coverage.Coverage.current()  # after a fork: the child's own
        if current is not None:
            _serialised(current)
        _saver = threading.Thread(
            target=_write_often, args=(_stop,), name="coverage-saver", daemon=True
        )
        _saver.start()
        # last registered, first run: before the exit save of this process's measurement
        atexit.unregister(_stop_saver)
        atexit.register(_stop_saver)

    def _stop_saver() -> None:
        _stop.set()
        if _saver is not None and _saver is not threading.current_thread():
            _saver.join(timeout=10)

    # coverage >= 7.10 may have started already, from its own .pth file
    if coverage.process_startup() or coverage.Coverage.current():
        _start_saver()
        os.register_at_fork(after_in_child=_start_saver)
