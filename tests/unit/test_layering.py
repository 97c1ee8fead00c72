"""Only adapter modules may import the I/O libraries; the domain stays pure.

Imports are read with ``ast``, nothing is imported. Adjust the three constants below
when modules move.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

IO_LIBRARIES = frozenset(
    {
        "redis",
        "aiosmtplib",
        "httpx",
        "httpcore",
        "httptools",
        "h11",
        "celery",
        "kombu",
        "uvicorn",
        "fastapi",
        "starlette",
        "websockets",
        "http",  # the standard library's client and server (notify.tracing posts spans)
    }
)

# The rooms of the installed package (the repository folders api/, sinks/ and workers/ are
# installed beneath notify, see pyproject.toml).
GATEWAY = "notify.api"
SINKS = "notify.sinks"
WORKERS = "notify.workers"
REDIS = "notify.redis"
CLI = "notify.cli"
# Outside the pure core although they live in notify/: the rooms above, the producer
# client, which writes into Redis through the adapters, the consumer client (httpx), and
# the tracer every role uses (it posts spans with http.client).
NOT_CORE = (
    GATEWAY,
    SINKS,
    WORKERS,
    REDIS,
    CLI,
    "notify.publisher",
    "notify.client",
    "notify.tracing",
)

ROOT = Path(__file__).resolve().parents[2]
# repository folder -> the package name it is installed as
PACKAGES = {"notify": "notify", "api": GATEWAY, "sinks": SINKS, "workers": WORKERS}


def module_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for folder, package in PACKAGES.items():
        # rglob does not follow the notify/api, notify/sinks, notify/workers links
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join([package, *parts])] = path
    return files


MODULES = module_files()


def within(module: str, *rooms: str) -> bool:
    return any(module == r or module.startswith(r + ".") for r in rooms)


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
            ancestor = current.startswith(name + ".")
            if name in MODULES and name not in seen and not ancestor:
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
        (
            "from .eventlog import Log",
            "notify.x",
            {"notify.eventlog", "notify.eventlog.Log"},
        ),
        (
            "from ..notify import y",
            "notify.api.routes.x",
            {"notify.api.notify", "notify.api.notify.y"},
        ),
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
    for package in PACKAGES.values():
        assert package in MODULES, f"{package}/__init__.py not found under {ROOT}"
    assert f"{REDIS}.eventlog" in MODULES
    assert f"{GATEWAY}.app" in MODULES


def test_the_repository_folders_are_installed_beneath_notify() -> None:
    for folder, package in PACKAGES.items():
        if folder != "notify":
            link = ROOT / "notify" / package.split(".")[1]
            assert link.is_symlink() and link.resolve() == (ROOT / folder).resolve()


# The package's own __init__ (re-exporting the producer client) and __main__ (the command
# line) are the two doors of the package, not part of the core.
CORE = sorted(
    m for m in MODULES if not within(m, *NOT_CORE) and m not in {"notify", "notify.__main__"}
)


@pytest.mark.parametrize("module", CORE)
def test_the_core_reaches_no_io_library_and_no_room(module: str) -> None:
    for reached, importer in project_closure(module).items():
        via = f" (reached through {importer})" if importer else ""
        offending = roots(imports_of(reached)) & IO_LIBRARIES
        assert not offending, f"{module} depends on {reached}{via}, which imports {offending}"
        rooms = {n for n in imports_of(reached) if within(n, *NOT_CORE)}
        assert not rooms, f"core module {reached}{via} imports {sorted(rooms)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not within(m, REDIS)))
def test_only_the_redis_adapters_import_redis(module: str) -> None:
    assert "redis" not in roots(imports_of(module)), (
        f"{module} imports redis; only {REDIS}.* may (wrap it in an adapter there)"
    )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_rooms_depend_only_downwards(module: str) -> None:
    names = imports_of(module)
    assert not roots(names) & {"api", "sinks", "workers"}, (
        f"{module} imports a repository folder by its folder name; use notify.api/sinks/workers"
    )
    forbidden: tuple[str, ...] = ()
    if within(module, GATEWAY):
        forbidden = (WORKERS, CLI)
    elif within(module, SINKS):
        forbidden = (GATEWAY, WORKERS, CLI)
    elif within(module, WORKERS):
        forbidden = (GATEWAY, CLI)
    elif within(module, REDIS):
        forbidden = (GATEWAY, SINKS, WORKERS, CLI)
    bad = sorted(n for n in names if within(n, *forbidden))
    assert not bad, f"{module} imports {bad}"
