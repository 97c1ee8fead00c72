"""What tracing costs a publish: bench d's single POST /v1/events with tracing off and
on, turn about, each on a fresh Redis and gateway.

"On" points OTEL_EXPORTER_OTLP_ENDPOINT at a sink on the load CPU that takes every
OTLP/HTTP export and drops it, so the gateway pays all of tracing (its spans, their
batching and encoding, the posting) and nothing waits for a collector. With
``--ratio R`` a third case samples R of the traces (OTEL_TRACES_SAMPLER
``parentbased_traceidratio``): the figure for a deployment that samples.

    bash bench/run.sh tracing                  # 3 rounds of 10 s each case
    bash bench/run.sh tracing --rounds 1 --seconds 3 --ratio 0.01
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from procs import BENCH, LOAD_CPU, PYTHON, free_port, notify_gateway, pinned, redis_server, stop
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


def single(workdir: Path, variables: dict[str, str], seconds: int) -> Result:
    with environment(variables), redis_server(workdir) as url, notify_gateway(url, workdir) as gw:
        return wrk(gw, "post.lua", "/v1/events", 64, seconds)


def main() -> None:
    p = argparse.ArgumentParser(description="single-POST throughput, tracing off and on")
    p.add_argument("--rounds", type=int, default=3, help="off/on pairs, turn about (3)")
    p.add_argument("--seconds", type=int, default=INGEST_S, help=f"per run ({INGEST_S})")
    p.add_argument("--ratio", type=float, help="also run with this share of traces sampled")
    p.add_argument("--out", default=str(BENCH / "out" / "tracing.json"))
    p.add_argument("--sink", type=int, help=argparse.SUPPRESS)  # the sink process itself
    args = p.parse_args()
    if args.sink is not None:
        sink(args.sink)
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
                out = single(Path(tmp), variables, args.seconds)
                res["runs"].setdefault(name, []).append(out)
                print(f"round {n + 1} {name}: {json.dumps(out)}", flush=True)
    off = statistics.median(r["requests_per_s"] for r in res["runs"]["off"])
    print()
    print("| tracing | single POST/s (median) | cost |")
    print("| --- | --- | --- |")
    for name, runs in res["runs"].items():
        rps = statistics.median(r["requests_per_s"] for r in runs)
        cost = f"{100 * (1 - rps / off):.1f} %" if off else "-"
        print(f"| {name} | {rps:,.0f} | {'-' if name == 'off' else cost} |")
        res.setdefault("median", {})[name] = rps
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nfull figures: {out_path}")


if __name__ == "__main__":
    main()
