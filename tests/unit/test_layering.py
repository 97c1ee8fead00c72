"""Only adapter modules may import the I/O libraries; the domain stays pure.

Imports are read with ``ast``, nothing is imported. Adjust the three constants below
when modules move.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

IO_LIBRARIES = frozenset({"redis", "aiosmtplib", "httpx", "celery"})

# Modules (and, for a package, everything under it) allowed to import IO_LIBRARIES.
ALLOWED_IMPORTERS = (
    "api",
    "sinks",
    "workers",
    "notify.redislog",
    "notify.publisher",
    "notify.cli",
    "notify.devstack",
    "notify.store",
    "notify.ledger",  # the Redis adapter for delivery records (added after the brief)
    "notify.digests",  # the Redis adapter for email digest windows
    "notify.alertbook",  # the Redis adapter for alerts kept alive in Alertmanager
)

# Must not import IO_LIBRARIES, directly or through any project module they import.
PURE_MODULES = (
    "notify.channels",
    "notify.events",
    "notify.sse",
    "notify.auth",
    "notify.errors",
    "notify.keys",
    "notify.settings",
    "notify.mail",
    "notify.mailtemplates",
    "notify.smtpurl",
    "notify.unsubscribe",
    "notify.alerts",
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("notify", "api", "sinks", "workers")


def module_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join(parts)] = path
    return files


MODULES = module_files()


def is_allowed(module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in ALLOWED_IMPORTERS)


def imported_names(source: str, module: str, is_package: bool = False) -> frozenset[str]:
    """Every absolute module name an import statement names, relative imports resolved.

    ``from a import b`` yields both ``a`` and ``a.b`` (``b`` may be a submodule).
    Imports under ``if TYPE_CHECKING:`` count too: a type is a dependency.
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            names.add(origin)
            names.update(f"{origin}.{alias.name}" for alias in node.names)
    return frozenset(n for n in names if n)


def roots(names: frozenset[str]) -> frozenset[str]:
    return frozenset(n.split(".")[0] for n in names)


@cache
def imports_of(module: str) -> frozenset[str]:
    path = MODULES[module]
    return imported_names(path.read_text(), module, path.name == "__init__.py")


def project_closure(module: str) -> dict[str, str]:
    """Project modules reachable from ``module`` through explicit imports, each mapped to
    the module that imports it. A parent package's ``__init__`` is not followed: its
    re-exports are for users, not a dependency of the module."""
    seen = {module: ""}
    todo = [module]
    while todo:
        current = todo.pop()
        for name in imports_of(current):
            if name in MODULES and name not in seen:
                seen[name] = current
                todo.append(name)
    return seen


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import redis", "notify.x", {"redis"}),
        ("import redis.asyncio as r", "notify.x", {"redis.asyncio"}),
        (
            "from redis.exceptions import ResponseError",
            "notify.x",
            {"redis.exceptions", "redis.exceptions.ResponseError"},
        ),
        ("from notify import keys", "notify.x", {"notify", "notify.keys"}),
        ("from . import keys", "notify.x", {"notify", "notify.keys"}),
        ("from .redislog import Log", "notify.x", {"notify.redislog", "notify.redislog.Log"}),
        ("from ..notify import y", "api.routes.x", {"api.notify", "api.notify.y"}),
        ("if TYPE_CHECKING:\n    import httpx", "notify.x", {"httpx"}),
        ("def f():\n    import celery", "notify.x", {"celery"}),
    ],
)
def test_imported_names(source: str, module: str, expected: set[str]) -> None:
    assert imported_names(source, module) == expected


def test_relative_import_from_a_package_init() -> None:
    assert imported_names("from .channels import x", "notify", is_package=True) >= {
        "notify.channels"
    }


def test_every_package_is_scanned() -> None:
    for package in PACKAGES:
        assert package in MODULES, f"{package}/__init__.py not found under {ROOT}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not is_allowed(m)))
def test_only_adapters_import_io_libraries(module: str) -> None:
    offending = roots(imports_of(module)) & IO_LIBRARIES
    assert not offending, (
        f"{module} imports {sorted(offending)}; only adapter modules may "
        f"(ALLOWED_IMPORTERS in {Path(__file__).name})"
    )


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_reach_no_io_library(module: str) -> None:
    assert module in MODULES, f"pure module {module} is missing"
    for reached, importer in project_closure(module).items():
        offending = roots(imports_of(reached)) & IO_LIBRARIES
        via = f" (reached through {importer})" if importer else ""
        assert not offending, f"{module} depends on {reached}{via}, which imports {offending}"
