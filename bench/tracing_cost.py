"""What tracing costs a publish: bench d's single POST /v1/events with tracing off and
on, turn about, each on a fresh Redis and gateway.

"On" points OTEL_EXPORTER_OTLP_ENDPOINT at a sink on the load CPU that takes every
OTLP/HTTP export and drops it, so the gateway pays all of tracing (its spans, their
batching and encoding, the posting) and nothing waits for a collector. With
``--ratio R`` a third case samples R of the traces (OTEL_TRACES_SAMPLER
``parentbased_traceidratio``): the figure for a deployment that samples. Without a
producer's traceparent (by default), "on" also stores a new one with every event, which
"off" does not: ``--traced-producer`` sends one with every request, so that only
tracing itself differs. Beside requests per second, each case tells the gateway's CPU
per request, which the other work on a busy machine disturbs less.

``--cpu N`` measures in this process instead, without a gateway: the CPU that
notify.tracing adds to N publishes (the spans of one publish, as api/routes/publish.py
makes them, their encoding and their export to the sink), every thread counted, off
against on; and on with every trace sampled out (only the traceparent goes on).
``--gateway-cpu N`` runs the gateway's own app in this process (FastPaths, Redis real,
uvicorn and the sockets left out), N single POSTs a turn, tracing off and on in short
turns, and gives the median of each round's difference: the figure that a machine
shared with other work disturbs least.

    bash bench/run.sh tracing                  # 3 rounds of 10 s each case
    bash bench/run.sh tracing --rounds 1 --seconds 3 --ratio 0.01
    bash bench/run.sh tracing --traced-producer  # the event stores a traceparent either way
    bash bench/run.sh tracing --cpu 100000
    bash bench/run.sh tracing --gateway-cpu 1920 --rounds 80 --ratio 0.01
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from procs import (
    BENCH,
    LOAD_CPU,
    PYTHON,
    SECRET,
    SERVER_CPU,
    free_port,
    notify_gateway,
    pinned,
    redis_server,
    stop,
    token,
)
from scenarios import INGEST_S, Result, machine, wrk


class Drop(BaseHTTPRequestHandler):
    """Takes an export and answers 200 with an empty ExportTraceServiceResponse."""

    protocol_version = "HTTP/1.1"  # the exporter keeps its connection

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def sink(port: int) -> None:
    ThreadingHTTPServer(("127.0.0.1", port), Drop).serve_forever()


@contextlib.contextmanager
def dropping_sink() -> Iterator[str]:
    """The sink in a process of its own on the load CPU; its endpoint."""
    port = free_port()
    proc = subprocess.Popen(pinned(LOAD_CPU, [PYTHON, __file__, "--sink", str(port)]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@contextlib.contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """``variables`` for the processes started within (notify_gateway passes its own
    environment on), removed again after."""
    before = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def single(workdir: Path, variables: dict[str, str], seconds: int, script: str) -> Result:
    with environment(variables), redis_server(workdir) as url, notify_gateway(url, workdir) as gw:
        out = wrk(gw, script, "/v1/events", 64, seconds)
    if out["requests_per_s"]:
        out["server_cpu_us_per_request"] = round(
            out["server_cpu_pct"] * 10_000 / out["requests_per_s"], 1
        )
    return out


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CHUNK = 256  # publishes between two looks at the export queue (a batch is 512 entries)


def publishes(n: int) -> float:
    """CPU seconds (every thread of this process) of ``n`` publishes' tracing, as
    api/routes/publish.py's accept_one() and store() trace one: the publish span, its
    notify.append child, the labels; spans exported (if on) before the figure is
    taken. After each chunk, a full batch waiting, the exporter has it sent, as a
    gateway's idle moments would."""
    from notify import tracing

    started = time.process_time()
    for chunk in range(0, n, CHUNK):
        for i in range(chunk, min(n, chunk + CHUNK)):
            with tracing.publish(TRACEPARENT) as span:
                traced = tracing.appending(span) if tracing.ENABLED else None
                if traced is not None:  # the write's answer: one event stored
                    pairs = [(f"1717171717171-{i}", "bench.ingest")]
                    traced.append_end, traced.first, traced.count = time.time_ns(), pairs[0], 1
        while tracing.ENABLED and len(tracing._queue.spans) >= tracing._queue.batch:
            time.sleep(0.0005)  # sleeping costs no CPU
    tracing.shutdown()  # exports what is left
    return time.process_time() - started


def cpu(n: int, rounds: int, endpoint: str) -> None:
    from notify import tracing

    cases = {
        "off": {},
        "on": {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint},
        "sampled out": {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_TRACES_SAMPLER": "always_off",
        },
    }
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, variables in cases.items():
            with environment(variables):
                tracing.setup("bench")
                us = publishes(n) / n * 1e6
            best[name] = min(best.get(name, us), us)
            print(f"{name}: {us:.2f} us CPU per publish", flush=True)
    print()
    print("| tracing | CPU per publish, tracing's part (best round) | added |")
    print("| --- | --- | --- |")
    for name, us in best.items():
        added = "-" if name == "off" else f"{us - best['off']:.2f} us"
        print(f"| {name} | {us:.2f} us | {added} |")


BODY = b'{"channel":"bench.ingest","type":"bench","data":{"n":1,"p":"x"}}'  # as post.lua
CONCURRENCY = 64  # requests under way at once, as wrk's connections


def gateway_cpu(n: int, rounds: int, endpoint: str, ratio: float | None) -> None:
    """The gateway's own app in this process (FastPaths over create_app, as ``notify
    serve`` builds it, its lifespan run) takes ``n`` single POSTs per case and round, 64
    under way at once, against a real Redis: the CPU per request of every thread, the
    exporter's included, with tracing turned off and on in turns, in one process. What
    HTTP parsing and the sockets cost (uvicorn) is not in it: the same either way, it is
    what makes a whole gateway's figures noisy on a shared machine. Short turns, taken
    in alternate order each round, and the median of each round's difference to "off"
    keep what the machine's other work does out of the difference."""
    from notify import tracing

    cases: dict[str, dict[str, str]] = {
        "off": {},
        "on": {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint},
    }
    if ratio is not None:
        cases[f"sampled {ratio:g}"] = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": str(ratio),
        }
    with tempfile.TemporaryDirectory(prefix="notify-bench-") as tmp, redis_server(Path(tmp)) as url:
        settings = {"NOTIFY_REDIS_URL": url, "NOTIFY_JWT_SECRET": SECRET}
        with environment(settings):
            figures = asyncio.run(serve_in_turns(n, rounds, cases))
    tracing.shutdown()
    print()
    print("| tracing | CPU per request (median) | added: median of the rounds' (quartiles) |")
    print("| --- | --- | --- |")
    for name, us in figures.items():
        added = [a - b for a, b in zip(us, figures["off"], strict=True)]
        q1, q2, q3 = statistics.quantiles(added, n=4) if len(added) > 1 else added * 3
        spread = "-" if name == "off" else f"{q2:.2f} us ({q1:.2f} to {q3:.2f})"
        print(f"| {name} | {statistics.median(us):.2f} us | {spread} |")


async def serve_in_turns(
    n: int, rounds: int, cases: dict[str, dict[str, str]]
) -> dict[str, list[float]]:
    from notify import tracing
    from notify.api.server import GC_THRESHOLD, create

    app: Any = create()
    authorization = b"Bearer " + token().encode()
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"authorization", authorization),
        (b"content-length", str(len(BODY)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/events",
        "raw_path": b"/v1/events",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    refused: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 202:
            refused.append(message["status"])

    async def client(count: int) -> None:
        for _ in range(count):
            await app(dict(scope), receive, send)

    each = max(1, n // CONCURRENCY)
    figures: dict[str, list[float]] = {name: [] for name in cases}
    async with app.app.router.lifespan_context(app.app):
        gc.freeze()  # as GatewayServer.startup does
        gc.set_threshold(*GC_THRESHOLD)
        await asyncio.gather(*(client(50) for _ in range(CONCURRENCY)))  # warm
        for round_ in range(rounds):
            for name in list(cases)[:: 1 if round_ % 2 else -1]:
                tracing.shutdown()
                with environment(cases[name]):
                    tracing.setup("gateway")
                started = time.process_time()
                await asyncio.gather(*(client(each) for _ in range(CONCURRENCY)))
                tracing.shutdown()  # what is queued is exported: its cost is counted
                figures[name].append((time.process_time() - started) / each / CONCURRENCY * 1e6)
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{name} {us[-1]:.2f} us" for name, us in figures.items()),
                flush=True,
            )
    assert not refused, f"{len(refused)} requests refused: {sorted(set(refused))}"
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description="single-POST throughput, tracing off and on")
    p.add_argument("--rounds", type=int, default=3, help="off/on pairs, turn about (3)")
    p.add_argument("--seconds", type=int, default=INGEST_S, help=f"per run ({INGEST_S})")
    p.add_argument("--ratio", type=float, help="also run with this share of traces sampled")
    p.add_argument(
        "--traced-producer",
        action="store_true",
        help="every request carries a traceparent, so every event stores one, off or on",
    )
    p.add_argument("--out", default=str(BENCH / "out" / "tracing.json"))
    p.add_argument("--cpu", type=int, metavar="N", help="measure N publishes in process")
    p.add_argument(
        "--gateway-cpu",
        type=int,
        metavar="N",
        help="N single POSTs per case and round through the gateway's app, in process",
    )
    p.add_argument("--sink", type=int, help=argparse.SUPPRESS)  # the sink process itself
    args = p.parse_args()
    if args.sink is not None:
        sink(args.sink)
        return
    if args.cpu is not None:
        with dropping_sink() as endpoint:
            cpu(args.cpu, args.rounds, endpoint)
        return
    if args.gateway_cpu is not None:
        if pinned(SERVER_CPU, []):
            os.sched_setaffinity(0, {int(SERVER_CPU)})  # as the gateway is
        with dropping_sink() as endpoint:
            gateway_cpu(args.gateway_cpu, args.rounds, endpoint, args.ratio)
        return
    res: Result = {"machine": machine(), "seconds": args.seconds, "runs": {}}
    print(json.dumps(res["machine"]), flush=True)
    with tempfile.TemporaryDirectory(prefix="notify-bench-") as tmp, dropping_sink() as endpoint:
        traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
        cases: dict[str, dict[str, str]] = {"off": {}, "on": traced}
        if args.ratio is not None:
            cases[f"sampled {args.ratio:g}"] = {
                **traced,
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": str(args.ratio),
            }
        for n in range(args.rounds):
            for name, variables in cases.items():
                script = "post_traced.lua" if args.traced_producer else "post.lua"
                out = single(Path(tmp), variables, args.seconds, script)
                res["runs"].setdefault(name, []).append(out)
                print(f"round {n + 1} {name}: {json.dumps(out)}", flush=True)
    off = statistics.median(r["requests_per_s"] for r in res["runs"]["off"])
    print()
    print("| tracing | single POST/s (median) | cost | gateway CPU per request (median) |")
    print("| --- | --- | --- | --- |")
    for name, runs in res["runs"].items():
        rps = statistics.median(r["requests_per_s"] for r in runs)
        cost = f"{100 * (1 - rps / off):.1f} %" if off else "-"
        us = statistics.median(r.get("server_cpu_us_per_request", 0.0) for r in runs)
        print(f"| {name} | {rps:,.0f} | {'-' if name == 'off' else cost} | {us:.1f} us |")
        res.setdefault("median", {})[name] = rps
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nfull figures: {out_path}")


if __name__ == "__main__":
    main()
