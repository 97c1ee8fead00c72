"""NOTIFY_LOG_FORMAT=json for real roles: one JSON object per line from notify, uvicorn
and the access log alike, each naming its role, and no token in any of them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson

from tests.support.factories import TokenMaker
from tests.support.procs import Gateway, Proc
from tests.support.redis import RedisServer


def json_lines(text: str) -> list[dict[str, object]]:
    lines = [line for line in text.splitlines() if line.strip()]
    # every line a JSON object: a plain-text line would fail here
    return [orjson.loads(line) for line in lines if not line.startswith("--- $")]


def test_the_gateway_logs_json_lines_without_tokens(
    redis_server: RedisServer, make_token: TokenMaker, jwt_secret: str, tmp_path: Path
) -> None:
    gateway = Gateway(
        redis_url=redis_server.url,
        jwt_secret=jwt_secret,
        directory=tmp_path,
        env={"NOTIFY_LOG_FORMAT": "json", "NOTIFY_LOG_LEVEL": "info"},
        serve_args=("--access-log",),
    ).start()
    try:
        token = make_token(subscribe=[">"])
        with httpx.Client(base_url=gateway.base_url, trust_env=False) as client:
            assert client.get("/v1/events", params={"channel": "x", "token": token}).is_success
        deadline = time.monotonic() + 10
        while "/v1/events?channel=x" not in gateway.log_text():
            assert time.monotonic() < deadline, gateway.log_tail()
            time.sleep(0.05)
        lines = json_lines(gateway.log_text())
        assert {line["role"] for line in lines} == {"gateway"}
        assert {"time", "level", "logger", "message"} <= set(lines[0])
        loggers = {line["logger"] for line in lines}
        assert {"uvicorn.error", "uvicorn.access"} <= loggers, loggers
        access = [x for x in lines if "/v1/events?channel=x" in str(x["message"])]
        assert "token=[redacted]" in str(access[0]["message"])
        assert token not in gateway.log_text()
    finally:
        gateway.kill()


def test_the_dispatcher_logs_json_lines(redis_server: RedisServer, tmp_path: Path) -> None:
    proc = Proc(
        ["dispatcher"],
        directory=tmp_path,
        env={"NOTIFY_REDIS_URL": redis_server.url, "NOTIFY_LOG_FORMAT": "json"},
        name="dispatcher",
    ).start()
    try:
        deadline = time.monotonic() + 30
        while "started" not in proc.log_text():
            assert time.monotonic() < deadline, proc.log_tail()
            time.sleep(0.1)
        lines = json_lines(proc.log_text())
        started = [x for x in lines if "started" in str(x["message"])]
        assert started and started[0]["role"] == "dispatcher"
        assert started[0]["logger"] == "notify.dispatcher"
    finally:
        proc.kill()
