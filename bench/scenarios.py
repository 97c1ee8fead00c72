"""The notify benchmarks (issue 2, "Speed and memory"), each against a fresh Redis
and a fresh server, and the same load against the naive peers: FastAPI for SSE,
python-socketio for WebSockets.

    a  saturation   1,000 SSE subscribers on one channel, offered far more than fits;
                    delivered events/s at the clients (target >= 300,000/s)
    b  latency      100 events/s to 1,000 subscribers; p50/p99/max publish-to-receive
                    (target p99 < 50 ms)
    c  idle memory  10,000 idle SSE connections; gateway RSS growth per connection
                    (target <= 16 KiB)
    d  ingest       single POST /v1/events per s (target >= 8,000) and events/s through
                    /v1/events/batch of 1,000 (target >= 100,000), with wrk
    e  peer         a, b and c against FastAPI + sse-starlette + broadcaster; ratios
    w  WebSocket    a, b and c over /v1/ws (bench/wsloadgen.py), printed beside SSE;
                    with w alone, all three; with some of a b c, only those. The same
                    cases also run over socket.io against python-socketio's AsyncServer
                    with its AsyncRedisManager (bench/sio_peer_app.py, published to by a
                    write-only manager; wsloadgen.py --socketio), printed beside notify's
                    WebSocket figures, when its venv bench/.sio-venv is there

Run through bench/run.sh (it raises the open-files limit and builds the peers' venvs):

    bash bench/run.sh            # everything, about 4 minutes
    bash bench/run.sh a b        # some scenarios (e = the peer's a, b and c)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from procs import (
    BENCH,
    GATEWAY_WORKERS,
    LOAD_CPU,
    PEER_PYTHON,
    SIO_PYTHON,
    Server,
    cpu_seconds,
    notify_gateway,
    peer_gateway,
    pinned,
    redis_server,
    rss_kib,
    runq_wait_seconds,
    sio_peer_gateway,
    spawn_load,
    stop,
    token,
)

Result = dict[str, Any]
Gateway = Callable[[str, Path], AbstractContextManager[Server]]

SUBSCRIBERS = 1000
SATURATION_RATE = 2000  # events/s offered: 2,000,000 deliveries/s, far above either server
# The peer's listener awaits one queue.put per subscriber per event, so a flood starves its
# writers; it is also measured at an offered load just above its ceiling, to be fair to it.
PEER_GENTLE_RATE = 150
SATURATION_S = 10.0
LATENCY_RATE = 100
LATENCY_S = 20.0
IDLE_CONNECTIONS = 10_000
INGEST_S = 10


def stream_run(
    server: Server,
    redis_url: str,
    *,
    channel: str,
    rate: float,
    batch: int,
    duration: float,
    sample_every: int,
    target: str,
    ws: bool = False,
) -> Result:
    """Open the subscribers, then publish, then measure at the clients."""
    warmup = 2.0
    lg, lines = spawn_load(
        "wsloadgen.py" if ws else "loadgen.py",
        [
            "--port",
            str(server.port),
            *where(server, channel, ws),
            "--connections",
            str(SUBSCRIBERS),
            "--duration",
            str(duration),
            "--warmup",
            str(warmup),
            "--sample-every",
            str(sample_every),
            "--server-pid",
            str(server.pid),
        ],
    )
    pub = None
    try:
        ready = json.loads(lines.expect("READY", 120))
        time.sleep(1.0)  # let the last subscriptions settle (the peer subscribes lazily)
        pub = publisher(target, redis_url, channel, rate, batch, duration + warmup + 8)
        result: Result = json.loads(lines.expect("RESULT", duration + warmup + 60))
        stop(pub)
        result["offered_per_s"] = rate * SUBSCRIBERS
        if result.get("events") and result.get("server_cpu_pct") is not None:
            # CPU time per delivery: robust to a shared machine, where the events/s
            # figure also measures how much of the core the others left
            cpu_s = result["server_cpu_pct"] * result["window_s"] / 100
            result["server_us_per_event"] = round(1e6 * cpu_s / result["events"], 2)
        result["connect_s"] = round(ready["connect_s"], 2)
        result["non_200"] = ready["non_200"]
        result["server_rss_kib"] = rss_kib(server.pid)
        return result
    finally:
        stop(lg)
        if pub is not None:
            stop(pub)


def publisher(
    target: str, redis_url: str, channel: str, rate: float, batch: int, duration: float
) -> subprocess.Popen[str]:
    """bench/publisher.py for notify (``notify``) and the SSE peer (``pubsub``); for the
    socket.io peer (``socketio``), its write-only Redis manager, from its own venv."""
    argv = ["--redis", redis_url, "--channel", channel, "--rate", str(rate)]
    argv += ["--batch", str(batch), "--duration", str(duration)]
    if target == "socketio":
        proc, _ = spawn_load("sio_peer_app.py", ["publish", *argv], python=SIO_PYTHON)
    else:
        proc, _ = spawn_load("publisher.py", ["--target", target, *argv])
    return proc


def where(server: Server, channel: str, ws: bool) -> list[str]:
    """The load generator's arguments that say what to subscribe to, and how."""
    if not ws:
        return ["--path", server.stream_path.format(channel=channel)]
    return ["--path", server.ws_path, "--channel", channel, *server.ws_args]


def saturation(
    gateway: Gateway,
    target: str,
    workdir: Path,
    rate: float = SATURATION_RATE,
    ws: bool = False,
) -> Result:
    with redis_server(workdir) as url, gateway(url, workdir) as server:
        return stream_run(
            server,
            url,
            channel="bench.sat",
            rate=rate,
            batch=100,
            duration=SATURATION_S,
            sample_every=50,
            target=target,
            ws=ws,
        )


def latency(gateway: Gateway, target: str, workdir: Path, ws: bool = False) -> Result:
    with redis_server(workdir) as url, gateway(url, workdir) as server:
        return stream_run(
            server,
            url,
            channel="bench.lat",
            rate=LATENCY_RATE,
            batch=1,
            duration=LATENCY_S,
            sample_every=10,
            target=target,
            ws=ws,
        )


def idle_memory(gateway: Gateway, workdir: Path, ws: bool = False) -> Result:
    script = "wsloadgen.py" if ws else "loadgen.py"
    with redis_server(workdir) as url, gateway(url, workdir) as server:
        path = ["--port", str(server.port), *where(server, "bench.idle", ws)]
        # warm up: the first stream imports and allocates what every later one shares
        warm, warm_lines = spawn_load(script, [*path, "--connections", "10", "--hold", "0.5"])
        warm_lines.expect("RESULT", 60)
        stop(warm)
        time.sleep(1.0)
        before = rss_kib(server.pid)
        hold = ["--hold", "120", "--connections", str(IDLE_CONNECTIONS)]
        lg, lines = spawn_load(script, [*path, *hold])
        try:
            ready = json.loads(lines.expect("READY", 300))
            time.sleep(3.0)
            after = rss_kib(server.pid)
            opened = int(ready["connections"]) - int(ready["non_200"])
            return {
                "connections": opened,
                "connect_s": round(ready["connect_s"], 2),
                "rss_before_kib": before,
                "rss_after_kib": after,
                "kib_per_connection": round((after - before) / max(opened, 1), 2),
            }
        finally:
            stop(lg)


WRK_LINE = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
WRK_ERRORS = re.compile(r"Socket errors:.*")
WRK_LAT = re.compile(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)")


def wrk(
    server: Server, script: str, path: str, connections: int, seconds: int = INGEST_S
) -> Result:
    wrk_bin = shutil.which("wrk")
    assert wrk_bin is not None
    env = {**os.environ, "NOTIFY_BENCH_TOKEN": token()}
    argv = [wrk_bin, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    argv += ["-s", str(BENCH / "wrk" / script), f"http://127.0.0.1:{server.port}{path}"]
    cpu0, children0, wall0 = cpu_seconds(server.pid), _children_cpu(), time.monotonic()
    wait0 = runq_wait_seconds(server.pid)
    out = subprocess.run(
        pinned(LOAD_CPU, argv), env=env, capture_output=True, text=True, timeout=seconds + 60
    ).stdout
    wall = time.monotonic() - wall0
    rps = WRK_LINE.search(out)
    non2xx = WRK_NON2XX.search(out)
    errors = WRK_ERRORS.search(out)
    lat = WRK_LAT.search(out)
    return {
        "connections": connections,
        "requests_per_s": round(float(rps.group(1))) if rps else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
        "latency_avg": lat.group(1) if lat else "",
        "server_cpu_pct": round(100 * (cpu_seconds(server.pid) - cpu0) / wall, 1),
        "server_runq_wait_pct": round(100 * (runq_wait_seconds(server.pid) - wait0) / wall, 1),
        "wrk_cpu_pct": round(100 * (_children_cpu() - children0) / wall, 1),
    }


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def ingest(workdir: Path) -> Result:
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    out: Result = {}
    with redis_server(workdir) as url, notify_gateway(url, workdir) as server:
        out["single"] = wrk(server, "post.lua", "/v1/events", 64)
    with redis_server(workdir) as url, notify_gateway(url, workdir) as server:
        batch = wrk(server, "batch.lua", "/v1/events/batch", 8)
        batch["events_per_s"] = batch["requests_per_s"] * 1000
        out["batch"] = batch
    return out


def machine() -> Result:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "loadavg_before": os.getloadavg(),
        "pinned": pinned("0", []) != [],
        "gateway_workers": GATEWAY_WORKERS,
    }


def table(res: Result) -> Iterator[str]:
    def get(*path: str) -> Any:
        cur: Any = res
        for p in path:
            if not isinstance(cur, dict) or p not in cur:
                return None
            cur = cur[p]
        return cur

    def fmt(v: Any, unit: str = "") -> str:
        if v is None:
            return "-"
        if isinstance(v, float) and v != v:
            return "-"
        return f"{v:,}{unit}" if isinstance(v, int | float) else str(v)

    def ratio(a: Any, b: Any, inverse: bool = False) -> str:
        if not a or not b:
            return "-"
        return f"{(b / a if inverse else a / b):.1f}x"

    both = [
        ("a saturation: delivered events/s", ">= 300,000", "a", "events_per_s", False),
        ("a loadgen CPU %", "", "a", "loadgen_cpu_pct", None),
        ("a server CPU %", "", "a", "server_cpu_pct", None),
        ("a server run-queue wait % (noise)", "", "a", "server_runq_wait_pct", None),
        ("a server CPU us per delivered event", "", "a", "server_us_per_event", True),
        ("a' same, peer offered only 150 ev/s", "", "a150", "events_per_s", False),
        ("b latency p50 ms", "", "b", "p50_ms", True),
        ("b latency p99 ms", "< 50", "b", "p99_ms", True),
        ("b latency max ms", "", "b", "max_ms", True),
        ("b delivered events/s", "100,000", "b", "events_per_s", False),
        ("b server CPU %", "", "b", "server_cpu_pct", None),
        ("b server run-queue wait % (noise)", "", "b", "server_runq_wait_pct", None),
        ("b server CPU us per delivered event", "", "b", "server_us_per_event", True),
        ("c idle KiB per connection", "<= 16", "c", "kib_per_connection", True),
    ]
    yield "| measure | target | notify | peer | notify/peer |"
    yield "| --- | --- | --- | --- | --- |"
    for label, target, scen, key, inverse in both:
        n = get("a" if scen == "a150" else scen, key)  # notify is only measured flooded
        p = get("e", scen, key)
        r = "-" if inverse is None else ratio(n, p, inverse)
        yield f"| {label} | {target} | {fmt(n)} | {fmt(p)} | {r} |"
    yield f"| d single POST /v1/events per s | >= 8,000 | {fmt(get('d', 'single', 'requests_per_s'))} | - | - |"  # noqa: E501
    yield f"| d batch events/s | >= 100,000 | {fmt(get('d', 'batch', 'events_per_s'))} | - | - |"
    for kind in ("single", "batch"):
        cpu, wait = get("d", kind, "server_cpu_pct"), get("d", kind, "server_runq_wait_pct")
        yield f"| d {kind}: server CPU % / run-queue wait % | | {fmt(cpu)} / {fmt(wait)} | - | - |"
    if "w" not in res:
        return
    sio = get("w", "sio")
    with_sio = isinstance(sio, dict) and "skipped" not in sio
    head = "| WebSocket beside SSE, same run | target | SSE | WebSocket | WS/SSE |"
    yield ""
    if with_sio:  # WS/peer reads like notify/peer: > 1x is notify ahead
        yield head + " socket.io peer | WS/peer |"
        yield "| --- | --- | --- | --- | --- | --- | --- |"
    else:
        yield head
        yield "| --- | --- | --- | --- | --- |"
    for label, target, scen, key, inverse in both:
        if scen == "a150":
            continue
        s, w = get(scen, key), get("w", scen, key)
        r = "-" if inverse is None else ratio(w, s)
        row = f"| {label} | {target} | {fmt(s)} | {fmt(w)} | {r} |"
        if with_sio:
            p = get("w", "sio", scen, key)
            rp = "-" if inverse is None else ratio(w, p, inverse)
            row += f" {fmt(p)} | {rp} |"
        yield row


def main() -> None:
    p = argparse.ArgumentParser(description="notify benchmarks")
    p.add_argument("scenarios", nargs="*", default=list("abcdew"), help="a b c d e w")
    p.add_argument("--out", default=str(BENCH / "out" / "results.json"))
    args = p.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < IDLE_CONNECTIONS + 1000:
        print(f"warning: open-files limit {hard} is below {IDLE_CONNECTIONS + 1000}")
    res: Result = {"machine": machine()}
    print(json.dumps(res["machine"]), flush=True)
    wanted = set(args.scenarios)
    peer_ok = PEER_PYTHON.exists()
    sio_ok = SIO_PYTHON.exists()
    with tempfile.TemporaryDirectory(prefix="notify-bench-") as tmp:
        work = Path(tmp)
        steps: list[tuple[str, str | None, Callable[[], Result]]] = [
            ("a", None, lambda: saturation(notify_gateway, "notify", work)),
            ("w", "a", lambda: saturation(notify_gateway, "notify", work, ws=True)),
            ("w", "sio.a", lambda: saturation(sio_peer_gateway, "socketio", work, ws=True)),
            ("b", None, lambda: latency(notify_gateway, "notify", work)),
            ("w", "b", lambda: latency(notify_gateway, "notify", work, ws=True)),
            ("w", "sio.b", lambda: latency(sio_peer_gateway, "socketio", work, ws=True)),
            ("c", None, lambda: idle_memory(notify_gateway, work)),
            ("w", "c", lambda: idle_memory(notify_gateway, work, ws=True)),
            ("w", "sio.c", lambda: idle_memory(sio_peer_gateway, work, ws=True)),
            ("d", None, lambda: ingest(work)),
            ("e", "a", lambda: saturation(peer_gateway, "pubsub", work)),
            ("e", "a150", lambda: saturation(peer_gateway, "pubsub", work, PEER_GENTLE_RATE)),
            ("e", "b", lambda: latency(peer_gateway, "pubsub", work)),
            ("e", "c", lambda: idle_memory(peer_gateway, work)),
        ]
        sse_cases = wanted & set("abc")
        for scen, sub, step in steps:
            if scen not in wanted:
                continue
            case = sub.rsplit(".", 1)[-1] if sub else None  # "sio.a" is case a
            if scen == "w" and sse_cases and case not in sse_cases:
                continue
            if scen == "e" and not peer_ok:
                res["e"] = {"skipped": f"no peer venv at {PEER_PYTHON.relative_to(BENCH.parent)}"}
                continue
            if sub and sub.startswith("sio.") and not sio_ok:
                venv = SIO_PYTHON.parents[1].relative_to(BENCH.parent)
                res.setdefault("w", {})["sio"] = {"skipped": f"no socket.io peer venv at {venv}"}
                continue
            name = scen + (f".{sub}" if sub else "")
            print(f"== {name} ...", flush=True)
            started = time.monotonic()
            try:
                out = step()
            except Exception as exc:  # a failed scenario is a figure too
                out = {"error": f"{type(exc).__name__}: {exc}"}
            out["loadavg_after"] = os.getloadavg()
            out["took_s"] = round(time.monotonic() - started, 1)
            if sub:
                slot = res.setdefault(scen, {})
                *outer, leaf = sub.split(".")
                for key in outer:
                    slot = slot.setdefault(key, {})
                slot[leaf] = out
            else:
                res[scen] = out
            print(f"   {json.dumps(out)}", flush=True)
    print()
    for line in table(res):
        print(line)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nfull figures: {out_path}")


if __name__ == "__main__":
    main()
