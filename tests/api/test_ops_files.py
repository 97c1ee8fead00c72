"""The Prometheus rules and the Grafana dashboard shipped in notify/ops: valid for
promtool, each alert fires on the series that should raise it (promtool's rule tests),
and every metric they name is one a gateway serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import redis.asyncio as aioredis

from notify import keys
from tests.api.conftest import ApiFactory
from tests.support.redis import RedisServer

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "notify" / "ops"
RULES = OPS / "prometheus-rules.yml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool(*args: str) -> str:
    done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dashboard_exprs() -> list[str]:
    board = json.loads((OPS / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


def test_the_rules_are_valid_and_fire_when_they_should(tmp_path: Path) -> None:
    assert "SUCCESS: 5 rules found" in promtool("check", "rules", str(RULES))
    tests = (ROOT / "tests" / "support" / "promtool_rules_test.yml").read_text()
    suite = tmp_path / "rules_test.yml"
    suite.write_text(tests.replace("RULES", str(RULES)))
    assert "SUCCESS" in promtool("test", "rules", str(suite))


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                # $job is Grafana's variable: any regex will do for the parser
                "rules": [
                    {"record": f"dashboard:q{i}", "expr": e.replace("$job", ".*")}
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.json"
    path.write_text(json.dumps(rules))
    assert f"SUCCESS: {len(exprs)} rules found" in promtool("check", "rules", str(path))


NAME = re.compile(r"\b((?:notify|process|python)_[a-z_]+)\b")
SUFFIXES = ("_bucket", "_sum", "_count", "_total")


async def test_every_metric_named_is_served(
    api_factory: ApiFactory, redis_server: RedisServer
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.xgroup_create(keys.LOG, keys.DISPATCH_GROUP, id="0", mkstream=True)
    await client.aclose()
    text = (await (await api_factory()).get("/metrics")).text
    served = set(re.findall(r"^# TYPE (\S+)", text, re.MULTILINE))
    served |= {name + "_total" for name in served}  # counters are typed without it
    named = set(NAME.findall(RULES.read_text() + "\n".join(dashboard_exprs())))
    assert named, "no metric found in the rules and dashboard"
    missing = {
        n
        for n in named
        if n not in served
        and not any(n.endswith(s) and n.removesuffix(s) in served for s in SUFFIXES)
    }
    assert not missing, f"named but not served: {sorted(missing)}"


def test_ops_files_ship_in_the_package() -> None:
    assert '"ops/*"' in (ROOT / "pyproject.toml").read_text()
