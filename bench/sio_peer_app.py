"""The naive WebSocket peer: python-socketio's AsyncServer scaled out with its Redis manager.

This is the Redis-scaled socket.io fan-out a Python shop would write first; the benchmark
runs it beside notify's ``/v1/ws`` with the same load. A client opens Engine.IO v4 over a
WebSocket at ``/socket.io/?EIO=4&transport=websocket``, connects to the default namespace
and emits ``subscribe`` with a channel (acknowledged with ``true``), which puts it in the
room named after the channel. Events reach the room through ``AsyncRedisManager``: any
process emits to the room with a write-only manager, which publishes on the manager's
Redis channel, and every server's manager delivers to its members of the room.

It lives in its own venv (bench/.sio-venv, built by bench/run.sh). Serve it with

    SIO_PEER_REDIS_URL=redis://127.0.0.1:6379/0 uvicorn sio_peer_app:app --app-dir bench \
        --loop uvloop --http httptools --ws websockets-sansio

Run as a script, it is the peer's publisher, the counterpart of bench/publisher.py (which
needs notify, absent from this venv): a write-only ``AsyncRedisManager`` emits ``event``
to the room with the envelope ``publisher.py --target pubsub`` sends, whose ``data`` is
``{"t": <send time>, "n": <seq>, "p": <pad>}`` for publish-to-receive latency:

    python bench/sio_peer_app.py publish --redis redis://127.0.0.1:6379/0 \
        --channel bench.x --rate 100 --batch 1 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import socketio

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

sio = socketio.AsyncServer(
    async_mode="asgi",
    client_manager=socketio.AsyncRedisManager(
        os.environ.get("SIO_PEER_REDIS_URL", "redis://127.0.0.1:6379/0")
    ),
)


@sio.on("subscribe")
async def subscribe(sid: str, channel: str) -> bool:
    await sio.enter_room(sid, channel)
    return True


async def healthz(scope: Scope, receive: Receive, send: Send) -> None:
    """Everything outside /socket.io/: ``GET /healthz`` for the bench, else 404."""
    if scope["type"] != "http":
        await send({"type": "websocket.close", "code": 1008})
        return
    ok = scope["path"] == "/healthz"
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200 if ok else 404, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok" if ok else b"not found"})


app = socketio.ASGIApp(sio, other_asgi_app=healthz)


async def publish(args: argparse.Namespace) -> dict[str, Any]:
    """``args.rate`` events/s to the room ``args.channel`` for ``args.duration`` s, in
    calls of at most ``args.batch`` (one emit, so one Redis PUBLISH, per event)."""
    manager = socketio.AsyncRedisManager(args.redis, write_only=True)
    pad = "x" * args.pad
    sent = seq = 0
    start = time.monotonic()
    deadline = start + args.duration
    cpu0 = time.process_time()
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        n = args.batch
        if args.rate > 0:
            due = int(args.rate * (now - start)) + 1 - sent
            if due <= 0:
                await asyncio.sleep(min(deadline - now, (sent + 1) / args.rate - (now - start)))
                continue
            n = min(due, args.batch)
        t = time.time()
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for i in range(n):
            seq += 1
            envelope = {
                "id": f"{int(t * 1000)}-{seq}",
                "channel": args.channel,
                "type": "bench",
                "data": {"t": t, "n": sent + i, "p": pad},
                "time": stamp,
            }
            await manager.emit("event", envelope, room=args.channel)
        sent += n
    wall = time.monotonic() - start
    return {
        "target": "socketio",
        "published": sent,
        "per_s": round(sent / wall),
        "cpu_pct": round(100 * (time.process_time() - cpu0) / wall, 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="the socket.io peer's publisher")
    p.add_argument("command", choices=["publish"])
    p.add_argument("--redis", required=True)
    p.add_argument("--channel", default="bench.x")
    p.add_argument("--rate", type=float, default=0.0, help="events/s; 0 = as fast as possible")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--pad", type=int, default=0, help="extra payload bytes per event")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    print("RESULT", json.dumps(runner(publish(args))), flush=True)


if __name__ == "__main__":
    main()
