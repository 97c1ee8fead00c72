"""Log lines: exact JSON and text shapes, ids carried, tokens masked."""

from __future__ import annotations

import logging
import logging.config

import orjson
import pytest

from notify.logs import JsonFormatter, TextFormatter, configure, mask_tokens, timestamp

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBhcnQ"


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("notify.worker", logging.WARNING, "f.py", 1, msg, args, None)
    rec.created = 1764219600.123456
    for name, value in extra.items():
        setattr(rec, name, value)
    return rec


def test_json_line_has_the_fields_and_ids() -> None:
    line = JsonFormatter("worker").format(
        record("delivery %s failed: %s", "dlv_1", "HTTP 500", delivery_id="dlv_1", trace_id="ab")
    )
    assert orjson.loads(line) == {
        "time": "2025-11-27T05:00:00.123Z",
        "level": "WARNING",
        "role": "worker",
        "logger": "notify.worker",
        "message": "delivery dlv_1 failed: HTTP 500",
        "delivery_id": "dlv_1",
        "trace_id": "ab",
    }
    assert "\n" not in line


def test_text_line_names_role_and_ids() -> None:
    text = TextFormatter("dispatcher").format(record("routed", event_id="1-0"))
    assert text.endswith(" dispatcher notify.worker WARNING routed [event_id=1-0]")


@pytest.mark.parametrize(
    "message",
    [
        f"GET /v1/stream?token={TOKEN} HTTP/1.1",
        f"GET /v1/stream?%74oken={TOKEN}",
        f"bearer {TOKEN} refused",
    ],
)
def test_tokens_never_reach_a_line(message: str) -> None:
    for formatter in (JsonFormatter("gateway"), TextFormatter("gateway")):
        line = formatter.format(record("%s", message))
        assert TOKEN not in line and "[redacted]" in line
    assert mask_tokens("no token here: eyJ alone") == "no token here: eyJ alone"


def test_an_exception_is_one_json_line() -> None:
    try:
        raise ValueError(f"bad {TOKEN}")
    except ValueError:
        import sys

        rec = record("failed")
        rec.exc_info = sys.exc_info()
    line = orjson.loads(JsonFormatter("worker").format(rec))
    assert "ValueError: bad [redacted]" in line["error"]


def test_timestamp_is_rfc3339_utc_with_milliseconds() -> None:
    assert timestamp(0.0) == "1970-01-01T00:00:00.000Z"
    assert timestamp(1764219600.999) == "2025-11-27T05:00:00.999Z"


def test_the_config_routes_uvicorn_and_celery_through_one_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = logging.getLogger().handlers[:]
    try:
        logging.getLogger("uvicorn.error").disabled = True  # as an earlier config may leave it
        configure("gateway", "json", "INFO")
        logging.getLogger("uvicorn.error").info("Started server process [1]")
        logging.getLogger("celery.app.trace").info("Task succeeded")  # quiet: WARNING
        logging.getLogger("notify.hub").debug("below the level")
        lines = capsys.readouterr().err.splitlines()
        assert [orjson.loads(x)["logger"] for x in lines] == ["uvicorn.error"]
        assert orjson.loads(lines[0])["role"] == "gateway"
    finally:
        root = logging.getLogger()
        root.handlers[:] = before
        root.setLevel(logging.WARNING)
