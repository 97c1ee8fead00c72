"""A minimal webhook receiver for benchmarks: answers 204, records arrival times.

Run: python bench/webhook_receiver.py PORT OUTFILE — on SIGTERM it writes one line per
request ("<arrival unix time> <event id>") to OUTFILE.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from typing import Any

import uvicorn

arrivals: list[tuple[float, bytes]] = []
EVENT_ID = re.compile(rb"[0-9]{13}-[0-9]+")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    # the first event id in the body: the envelope's own, or where a format puts it
    found = EVENT_ID.search(body)
    arrivals.append((time.time(), found.group() if found else b"?"))
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def main() -> None:
    port, out = int(sys.argv[1]), sys.argv[2]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        access_log=False, interface="asgi3", http="httptools", loop="uvloop",
    )  # fmt: skip
    server = uvicorn.Server(config)

    def dump(*_: object) -> None:
        with open(out, "w") as f:
            f.writelines(f"{t:.6f} {i.decode()}\n" for t, i in arrivals)
        server.should_exit = True

    signal.signal(signal.SIGUSR1, lambda *_: dump())
    server.run()


if __name__ == "__main__":
    main()
