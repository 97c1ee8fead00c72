"""``notify.supervise``, the helper behind ``notify dev``, ``notify serve --workers`` and
``notify worker``: real child processes, real signals."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from notify.supervise import Child, Supervisor
from tests.support.ports import free_port
from tests.support.procs import Proc, descendants
from tests.support.redis import RedisServer


def gone(pid: int) -> bool:
    """The process ended (a zombie counts: whoever adopted it has not reaped it yet)."""
    try:
        return "zombie" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_child_that_keeps_exiting_is_started_again_less_and_less_often() -> None:
    reports: list[tuple[int | None, str, float, float]] = []

    def exited(child: Child, why: str) -> None:
        pause = supervisor.respawn(child)
        reports.append((child.pid, why, pause, time.monotonic()))
        if len(reports) == 3:
            supervisor.stop()

    supervisor = Supervisor(exited, every=0.05, grace=5)
    supervisor.start(Child("quitter", ["sh", "-c", "exit 3"]))
    assert supervisor.run() == 0
    assert [(why, pause) for _, why, pause, _ in reports] == [
        ("exited with 3", 1.0),
        ("exited with 3", 2.0),
        ("exited with 3", 4.0),
    ]
    assert len({pid for pid, *_ in reports}) == 3  # a new process each time
    # each start waited out its pause (the process then exits at once)
    assert reports[1][3] - reports[0][3] >= 1.0
    assert reports[2][3] - reports[1][3] >= 2.0


def test_a_child_judged_broken_is_killed_and_reported_like_an_exit() -> None:
    child = Child("hung", ["sleep", "60"])
    reports: list[str] = []
    pids: list[int | None] = []

    def exited(_: Child, why: str) -> None:
        reports.append(why)
        supervisor.respawn(child)

    def tick() -> None:
        if child.pid not in pids and child.running():
            pids.append(child.pid)
            if len(pids) == 1:
                supervisor.kill(child, "consumed nothing")
            else:
                supervisor.stop()

    supervisor = Supervisor(exited, every=0.05, grace=5)
    supervisor.start(child)
    assert supervisor.run(tick) == 0
    assert reports == ["consumed nothing"]
    first, second = pids
    assert first is not None and second is not None and first != second
    assert gone(first) and gone(second)


def test_an_exit_can_stop_everything_with_a_code() -> None:
    """``notify dev``: one role ending ends the stack; the others are stopped."""
    reports: list[str] = []

    def exited(child: Child, why: str) -> None:
        reports.append(f"{child.name} {why}")
        supervisor.stop(1)

    supervisor = Supervisor(exited, every=0.05, grace=5)
    stays = supervisor.start(Child("stays", ["sleep", "60"]))
    supervisor.start(Child("quits", ["sh", "-c", "sleep 0.3; exit 2"]))
    assert supervisor.run() == 1
    assert reports == ["quits exited with 2"]
    assert stays.proc is not None and stays.proc.returncode == -signal.SIGTERM


def test_stopping_gives_one_grace_period_then_kills(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    supervisor = Supervisor(lambda child, why: None, every=0.05, grace=1.0)
    polite = supervisor.start(Child("polite", ["sleep", "60"]))
    # ignores SIGTERM (an ignored signal stays ignored across exec)
    deaf = supervisor.start(
        Child("deaf", ["sh", "-c", 'trap "" TERM; touch "$0"; exec sleep 60', str(ready)])
    )

    def tick() -> None:
        if ready.exists():
            supervisor.stop()

    began = time.monotonic()
    assert supervisor.run(tick) == 0
    assert time.monotonic() - began >= 1.0
    assert polite.proc is not None and polite.proc.returncode == -signal.SIGTERM
    assert deaf.proc is not None and deaf.proc.returncode == -signal.SIGKILL


SUPERVISOR = """
from notify.supervise import Child, Supervisor

supervisor = Supervisor(lambda child, why: supervisor.stop(1), every=0.05, grace=5)
child = supervisor.start(Child("sleeper", ["sleep", "60"]))
told = False

def tick():
    global told
    if not told:  # the signal handlers are in place by now
        print(child.pid, flush=True)
        told = True

raise SystemExit(supervisor.run(tick))
"""


@contextlib.contextmanager
def supervised_sleeper() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A supervisor in its own process, and the pid of its child, once it watches it."""
    proc = subprocess.Popen([sys.executable, "-c", SUPERVISOR], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    child = 0
    try:
        child = int(proc.stdout.readline())
        yield proc, child
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        if child and not gone(child):
            os.kill(child, signal.SIGKILL)


def test_sigterm_stops_the_supervisor_cleanly_with_its_children() -> None:
    with supervised_sleeper() as (supervisor, child):
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(10) == 0
        assert gone(child)


def test_children_die_with_a_supervisor_killed_with_sigkill() -> None:
    with supervised_sleeper() as (supervisor, child):
        supervisor.kill()  # it can forward nothing: the kernel does (PDEATHSIG)
        supervisor.wait()
        until(lambda: gone(child), "the child to die with its supervisor", timeout=5)


def start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks after boot), None once it has ended (a
    zombie too): with the pid, it names one process, whatever takes the pid later."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    state, started = fields[0], fields[19]
    return None if state in ("Z", "X") else started


POOL = 3
"""``notify worker --concurrency`` for the process-tree test."""


def test_the_worker_runs_its_pool_and_all_of_it_dies_with_a_kill_9(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """``notify worker --concurrency 3``: one Celery process beneath the supervisor, a
    pool of three beneath it. ``kill -9`` of the supervisor alone (it can forward
    nothing; the test does not signal its process group) ends every one of them."""
    port = free_port()
    env = {"NOTIFY_REDIS_URL": redis_server.url, "NOTIFY_HEALTH_PORT": port}
    worker = Proc(["worker", "--concurrency", str(POOL)], directory=tmp_path, env=env)
    worker.start()
    try:
        # ready: its Celery worker consumes (Celery starts its pool before that)
        worker.wait_http_ready(f"http://127.0.0.1:{port}/readyz", timeout=60)
        assert worker.pid is not None
        supervisor = worker.pid
        [celery] = descendants(supervisor)[:1]
        deadline = time.monotonic() + 10
        while len(pool := descendants(celery)) < POOL and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(pool) == POOL, (pool, worker.log_tail())
        assert descendants(supervisor) == [celery, *pool], worker.log_tail()
        started = {pid: start_time(pid) for pid in [celery, *pool]}
        assert None not in started.values()

        os.kill(supervisor, signal.SIGKILL)
        assert worker.wait(10) == -signal.SIGKILL

        def all_gone() -> bool:
            return all(start_time(pid) != began for pid, began in started.items())

        until(all_gone, "the Celery process and its pool to die with the supervisor", 5)
    finally:
        worker.kill()  # its whole process group: anything left behind
