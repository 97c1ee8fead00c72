"""notify's Lua lives in notify/redis/lua/: every file compiles on a real Redis, and
no Python module holds an inline script."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from notify.redis import scripts
from tests.support.redis import RedisServer

ROOT = Path(__file__).resolve().parents[2]
LUA = ROOT / "notify" / "redis" / "lua"
SCRIPTS = sorted(p.stem for p in LUA.glob("*.lua") if p.stem != "prelude")


def python_files() -> list[Path]:
    return [p for d in ("notify", "api", "sinks", "workers") for p in (ROOT / d).rglob("*.py")]


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_compiles(name: str, redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert len(client.script_load(scripts.source(name))) == 40
    finally:
        client.close()


def test_the_prelude_comes_first_and_every_script_is_used() -> None:
    assert scripts.source(SCRIPTS[0]).startswith((LUA / "prelude.lua").read_text())
    sources = "".join(
        p.read_text()
        for d in ("notify", "api", "sinks", "workers")
        for p in (ROOT / d).rglob("*.py")
    )
    unused = [name for name in SCRIPTS if f'"{name}"' not in sources]
    assert not unused, f"scripts no module loads: {unused}"


def test_no_python_module_carries_inline_lua() -> None:
    inline = [str(p.relative_to(ROOT)) for p in python_files() if "redis.call(" in p.read_text()]
    assert not inline, f"Lua belongs in notify/redis/lua/, not in {inline}"


def test_the_delivery_record_is_laid_out_in_one_place() -> None:
    """Every script that makes a delivery record (the ledger's, the digests') goes
    through the prelude's ``new_delivery``, so the record's fields are named once."""
    writers = sorted(p.name for p in LUA.glob("*.lua") if "'created_ms'" in p.read_text())
    assert writers == ["prelude.lua"]
    makers = sorted(p.stem for p in LUA.glob("*.lua") if "new_delivery(" in p.read_text())
    assert makers == ["delivery_create", "digest_flush", "prelude"]
