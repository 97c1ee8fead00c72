"""Child processes kept by a supervisor: started, watched, started again, stopped.

Three commands run others: ``notify dev`` (Redis, gateway, dispatcher, worker, SMTP),
``notify serve --workers N`` (N gateways sharing a port) and ``notify worker`` (its
Celery process). What they share lives here: a child dies with its supervisor, even one
killed with ``kill -9`` (which forwards nothing); SIGINT and SIGTERM stop the supervisor
cleanly; a child that keeps dying right after its start is started again less and less
often; stopping gives every child one grace period, then SIGKILL. What an exit means
(stop everything, or start it again) and any judgement of a running child (a stalled
consumer) stay with the caller, in ``on_exit`` and ``tick``.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

PR_SET_PDEATHSIG = 1
QUICK_EXIT = 30.0
"""A child that exits sooner than this after its start waits before it starts again."""
FIRST_PAUSE = 0.5
MAX_PAUSE = 30.0


@functools.cache
def _prctl() -> Callable[[int, int], int] | None:
    """libc's prctl, or None where there is none (not Linux). Looked up by the supervisor
    before it forks, so that a child does not load a library between fork and exec (a
    thread of the supervisor may hold the loader's lock then)."""
    try:
        prctl: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


def die_with_parent(parent: int | None = None) -> None:
    """Ask the kernel for SIGKILL when this process's parent dies, so nothing runs on
    unsupervised. Called in a new process: before exec, or in a forked pool process.

    ``parent`` is the pid that forked this process: had it died before the request took
    effect, no signal would come, so this process ends at once."""
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


class Child:
    """One command under supervision, and the process running it now (if any)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        stdout: int | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.stdout = stdout
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.restarts = 0
        self.quick_exits = 0
        """Exits in a row, each soon after its start: the pause before the next grows."""
        self.due: float | None = None
        """When an exited child is to start again (see :meth:`Supervisor.respawn`)."""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit status of its process, None while it runs (or when there is none)."""
        return self.proc.poll() if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        _prctl()  # looked up here, not in the forked child
        parent = os.getpid()
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=self.stdout,
            preexec_fn=lambda: die_with_parent(parent),
        )
        self.started = time.monotonic()
        self.due = None

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()


OnExit = Callable[[Child, str], None]
"""Told that a child exited or was killed, and why ("exited with -9"): it calls
:meth:`Supervisor.respawn` or :meth:`Supervisor.stop` (else the child stays down). The
child's ``pid`` is still the old process's."""


class Supervisor:
    """Watches its children every ``every`` seconds until SIGINT or SIGTERM (or
    :meth:`stop`), then stops them: SIGTERM, ``grace`` seconds, SIGKILL."""

    def __init__(self, on_exit: OnExit, *, every: float, grace: float) -> None:
        self.on_exit = on_exit
        self.every = every
        self.grace = grace
        self.children: list[Child] = []
        self.stopping = False
        self.code = 0

    def start(self, child: Child) -> Child:
        """Start ``child`` and watch it from now on."""
        child.start()
        self.children.append(child)
        return child

    def respawn(self, child: Child) -> float:
        """Start an exited child again at the next look: at once, or after a pause
        (returned, in seconds) that doubles with each exit in a row that came soon after
        its start."""
        quick = time.monotonic() - child.started < QUICK_EXIT
        child.quick_exits = child.quick_exits + 1 if quick else 0
        pause = min(MAX_PAUSE, FIRST_PAUSE * 2**child.quick_exits) if quick else 0.0
        child.restarts += 1
        child.due = time.monotonic() + pause
        return pause

    def kill(self, child: Child, why: str) -> None:
        """Kill a child the caller judged broken, and report it as an exit."""
        child.kill()
        self._exited(child, why)

    def stop(self, code: int = 0) -> None:
        """Stop watching: :meth:`run` then stops the children and returns ``code`` (the
        first one given)."""
        if not self.stopping:
            self.stopping, self.code = True, code

    def run(self, tick: Callable[[], None] | None = None) -> int:
        """Watch until stopped, then stop the children; returns the code given to
        :meth:`stop` (0 after SIGINT or SIGTERM). ``tick`` runs after every look at the
        children: the caller's own judgement (which may :meth:`kill` one)."""
        handlers = {
            s: signal.signal(s, lambda *_: self.stop()) for s in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            while not self.stopping:
                self._nap()
                for child in self.children:
                    if child.due is None and (code := child.returncode) is not None:
                        self._exited(child, f"exited with {code}")
                    self._start_due(child)
                if tick is not None and not self.stopping:
                    tick()
        finally:
            self._shut_down()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        return self.code

    def _exited(self, child: Child, why: str) -> None:
        if self.stopping:  # the exit of a child being stopped needs no report
            return
        self.on_exit(child, why)
        if child.due is None and not child.running():
            child.proc = None  # not started again: reported once, it stays down

    def _start_due(self, child: Child) -> None:
        if child.due is not None and time.monotonic() >= child.due and not self.stopping:
            child.start()

    def _nap(self) -> None:
        """Sleep ``every`` seconds, waking early when a signal handler stopped the loop."""
        end = time.monotonic() + self.every
        while not self.stopping and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    def _shut_down(self) -> None:
        """SIGTERM to every running child (the last started first), then SIGKILL to any
        still running when the grace period is over."""
        running = [c for c in reversed(self.children) if c.running()]
        for child in running:
            assert child.proc is not None
            child.proc.terminate()
        deadline = time.monotonic() + self.grace
        for child in running:
            assert child.proc is not None
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
