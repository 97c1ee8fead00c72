"""System binaries the real-server tests need, installed with apt-get when missing."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

_lock = threading.Lock()
_updated = False


def find_binary(name: str, *candidates: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for path in (*candidates, f"/usr/bin/{name}", f"/usr/sbin/{name}"):
        if os.access(path, os.X_OK):
            return path
    return None


def ensure_binary(name: str, package: str, *candidates: str) -> str:
    """The path of ``name``; installs the Debian ``package`` first when it is missing.

    Guarded by a thread lock and a file lock, so parallel test processes install once.
    """
    found = find_binary(name, *candidates)
    if found:
        return found
    global _updated
    with _lock, _apt_file_lock():
        found = find_binary(name, *candidates)
        if found:
            return found
        if os.geteuid() != 0:
            raise RuntimeError(f"{name} is missing; install the {package!r} package (needs root)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if not _updated:
            subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
            _updated = True
        subprocess.run(["apt-get", "install", "-y", "-q", package], check=True, env=env)
    found = find_binary(name, *candidates)
    if not found:
        raise RuntimeError(f"{name} still missing after installing {package!r}")
    return found


@contextlib.contextmanager
def _apt_file_lock() -> Iterator[None]:
    path = Path(tempfile.gettempdir()) / "notify-tests-apt.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
