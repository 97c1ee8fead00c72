"""Log records as one line each, text or JSON, the same for every role.

``logging_config(role, fmt, level)`` is a ``logging.config.dictConfig`` document that
each role applies once at its start (uvicorn takes it as its ``log_config``), so the
gateway, uvicorn, the dispatcher, the worker and Celery all write the same shape.
A JSON line holds ``time``, ``level``, ``role``, ``logger``, ``message``, the ids a
record carries in ``extra`` (event, delivery, subscription, trace) and ``error`` for an
exception; while tracing (notify.tracing), a record without a trace id of its own gets
the current span's. Anything shaped like a JWT is masked whatever logged it: tokens travel in
query strings (``EventSource`` cannot send headers) and must never reach a log.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import logging.config
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]

# the ids a record may carry in ``extra={...}``, copied to the JSON line when present
CONTEXT = ("event_id", "delivery_id", "subscription_id", "trace_id", "span_id")

span_ids: Callable[[], tuple[str, str] | None] | None = None
"""The current span's trace and span ids, set by notify.tracing while it traces."""

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+")
MASK = "[redacted]"


def mask_tokens(text: str) -> str:
    return _JWT.sub(MASK, text) if "eyJ" in text else text


def timestamp(created: float) -> str:
    """RFC 3339 UTC with milliseconds, as the event envelope's ``time``."""
    whole = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + (
        f".{int((created - whole) * 1000):03d}Z"
    )


def ids_of(record: logging.LogRecord) -> dict[str, str]:
    """The context ids of a record: its own, else the current span's while tracing."""
    ids = {n: str(v) for n in CONTEXT if (v := getattr(record, n, None)) is not None}
    if span_ids is not None and "trace_id" not in ids and (current := span_ids()) is not None:
        ids["trace_id"], ids["span_id"] = current
    return ids


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": timestamp(record.created),
            "level": record.levelname,
            "role": self.role,
            "logger": record.name,
            "message": mask_tokens(record.getMessage()),
        }
        line.update(ids_of(record))
        if record.exc_info:
            line["error"] = mask_tokens(self.formatException(record.exc_info))
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__(f"%(asctime)s {role} %(name)s %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(f"{name}={value}" for name, value in ids_of(record).items())
        return mask_tokens(f"{text} [{ids}]" if ids else text)


def configure(role: str, fmt: LogFormat = "text", level: str = "INFO") -> None:
    """Apply :func:`logging_config` to this process (each role's entry point, once).

    The loggers it names are enabled again: dictConfig leaves a logger that an earlier
    configuration disabled as it was, and its records would vanish."""
    config = logging_config(role, fmt, level)
    logging.config.dictConfig(config)
    for name in config["loggers"]:
        logging.getLogger(name).disabled = False
    logging.captureWarnings(True)  # a library's warning is a record (py.warnings) too


def json_lines_only(role: str) -> None:
    """Make every line this process (and the processes it forks) writes to stdout or
    stderr a JSON object: lines that are one pass as they are, any other (Celery's
    start-up banner and its shutdown notices, which it prints rather than logs) is
    wrapped in one, logger ``stdout``/``stderr``. File descriptors 1 and 2 become pipes
    that a thread of this process reads; at exit the thread is given time to finish."""
    pumps = [_wrap(fd, name, role) for fd, name in ((1, "stdout"), (2, "stderr"))]

    def drain() -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd in (1, 2):
            os.close(fd)  # this process's write end: the reader sees the end
        for pump in pumps:
            pump.join(2.0)

    atexit.register(drain)


def _wrap(fd: int, name: str, role: str) -> threading.Thread:
    target = os.dup(fd)
    read, write = os.pipe()
    os.dup2(write, fd)
    os.close(write)

    def pump() -> None:
        with os.fdopen(read, "rb") as lines, os.fdopen(target, "wb", buffering=0) as out:
            for raw in lines:
                text = raw.rstrip(b"\r\n")
                if not text.strip():
                    continue
                if text.startswith(b"{") and text.endswith(b"}"):
                    out.write(text + b"\n")
                    continue
                message = mask_tokens(text.decode("utf-8", "replace"))
                level = "WARNING" if name == "stderr" and "Warning" in message else "INFO"
                line = {
                    "time": timestamp(time.time()),
                    "level": level,
                    "role": role,
                    "logger": name,
                    "message": message,
                }
                out.write(orjson.dumps(line) + b"\n")

    thread = threading.Thread(target=pump, name=f"json-{name}", daemon=True)
    thread.start()
    return thread


def logging_config(role: str, fmt: LogFormat = "text", level: str = "INFO") -> dict[str, Any]:
    """One handler on stderr for the root logger; uvicorn's and Celery's loggers
    propagate to it instead of keeping handlers of their own."""
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    quiet = {"level": "WARNING"}  # per-request and per-task chatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": {"()": formatter, "role": role}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "line",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # NOTSET: their records follow the root's level, whatever an earlier
            # configuration (uvicorn's own) set
            "uvicorn": {"handlers": [], "propagate": True, "level": "NOTSET"},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": "NOTSET"},
            "uvicorn.access": {"handlers": [], "propagate": True, "level": "NOTSET"},
            "celery": {"handlers": [], "propagate": True, "level": "NOTSET"},
            "celery.app.trace": quiet,
            "celery.worker.strategy": quiet,
        },
    }
