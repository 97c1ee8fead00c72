"""`notify serve`: uvicorn, ending live streams before it stops.

uvicorn waits for open responses before running the app's shutdown, and an event
stream never ends by itself; so the server first tells every hub of the process to
close its streams (clients then resume on another gateway with their last id).
"""

from __future__ import annotations

import logging
import re
import socket
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from api.hub import ACTIVE

TOKEN_IN_URL = re.compile(r"((?:^|[?&])token=)[^&\s\"']+")


class RedactTokens(logging.Filter):
    """Query tokens (EventSource cannot send headers) must never reach a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                TOKEN_IN_URL.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str):
            record.msg = TOKEN_IN_URL.sub(r"\1[redacted]", record.msg)
        return True


LOG_CONFIG: dict[str, Any] = {
    **LOGGING_CONFIG,
    "filters": {"redact": {"()": "notify.server.RedactTokens"}},
    "handlers": {
        name: {**handler, "filters": ["redact"]}
        for name, handler in LOGGING_CONFIG["handlers"].items()
    },
}


class GatewayServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for hub in list(ACTIVE):
            hub.close_all("shutdown")
        await super().shutdown(sockets=sockets)


def create() -> object:
    """The ASGI app, built from the environment (uvicorn factory)."""
    from api.app import create_app
    from notify.settings import load

    return create_app(load())


def serve(host: str, port: int, workers: int, *, access_log: bool = False) -> None:
    config = uvicorn.Config(
        "notify.server:create",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        log_config=LOG_CONFIG,
        ws_max_size=1024 * 1024,
        lifespan="on",
        access_log=access_log,
        timeout_graceful_shutdown=5,
        backlog=4096,
        proxy_headers=True,
    )
    server = GatewayServer(config)
    if workers > 1:
        sock = config.bind_socket()
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, target=server.run, sockets=[sock]).run()
    else:
        server.run()
