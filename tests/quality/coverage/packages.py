"""Coverage of a `make coverage` run by package: the core, the command line, the Redis
adapters, the gateway, the sinks and the workers, then the total.

``python tests/quality/coverage/packages.py DATA_FILE``. Files are reported where they
live in the repository (``api/…``, ``sinks/…``, ``workers/…``: coverage resolves the
``notify/api`` links), and grouped under the package name they are imported by."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parents[3]
GROUPS = (
    ("api/", "notify/api"),
    ("sinks/", "notify/sinks"),
    ("workers/", "notify/workers"),
    ("notify/redis/", "notify/redis"),
    ("notify/cli/", "notify/cli"),
    ("notify/", "notify"),
)


def group_of(path: Path) -> str:
    relative = path.resolve().relative_to(ROOT).as_posix()
    return next(name for prefix, name in GROUPS if relative.startswith(prefix))


def main(data_file: str) -> None:
    cov = coverage.Coverage(data_file=data_file)
    cov.load()
    statements: dict[str, int] = defaultdict(int)
    missing: dict[str, int] = defaultdict(int)
    for measured in cov.get_data().measured_files():
        _, lines, _, missed, _ = cov.analysis2(measured)
        if not lines:
            continue  # skip_empty, as `coverage report` does
        group = group_of(Path(measured))
        statements[group] += len(lines)
        missing[group] += len(missed)
    width = max(len(name) for _, name in GROUPS)
    print(f"{'package':<{width}}  {'stmts':>6}  {'miss':>6}  cover")
    for name in [*sorted(statements), "TOTAL"]:
        stmts = sum(statements.values()) if name == "TOTAL" else statements[name]
        miss = sum(missing.values()) if name == "TOTAL" else missing[name]
        print(f"{name:<{width}}  {stmts:>6}  {miss:>6}  {100 * (stmts - miss) / stmts:5.1f}%")


if __name__ == "__main__":
    main(sys.argv[1])
