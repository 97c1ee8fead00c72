"""Redis CPU per published and per delivered event, on each primary of a Redis Cluster
(issue 14): how the event log's capacity grows with shards.

Starts a local cluster of 3 primaries with a replica each (tests/support/cluster.py,
ports <= 55535; a fresh cluster for each configuration, so each starts empty and
``NOTIFY_SHARDS`` is recorded anew), a RabbitMQ vhost of its own on the machine's
RabbitMQ for Celery's broker (a Cluster store needs one; deleted at the end), and:

1. publish, ``NOTIFY_SHARDS=1`` and then ``NOTIFY_SHARDS=3``: a ``notify serve``
   gateway (pinned to CPU 0, like the other benchmarks) takes wrk's single
   ``POST /v1/events`` (each event on the next of CHANNELS channels) and then
   ``/v1/events/batch`` (1,000 events over BATCH_CHANNELS channels a batch, the batches
   rotating over all CHANNELS). Before the two windows, FILL_S s of batches fill the
   channel streams (CHANNEL_HISTORY_MAX_EVENTS each) and, at a few ten thousand events/s,
   the one-shard log (HISTORY_MAX_EVENTS); three shard logs fill up during the windows.
   So the windows pay trimming, as a long-running deployment does.
   For each primary: the events that landed on it (``entries-added`` of the shard logs
   it holds), its CPU (INFO cpu, user + sys) over the window, so CPU microseconds per
   event; the busiest primary's CPU per second of load (its core share: the bottleneck);
   the publish rate reached.
2. deliver, ``NOTIFY_SHARDS=3``: the same with ``notify dispatcher``, ``notify worker``
   and one webhook subscription (``bench.>``) to a local receiver answering at once;
   DELIVERIES events are published in batches and the window closes when the last is
   delivered. Redis CPU per delivered event on each primary (the ``{n}`` node keeps the
   delivery records), with the publish share (phase 1's figure) taken out, and the rate.

The cluster's nodes and the load generator share CPU 1; the dispatcher, worker and
receiver run where the scheduler puts them. On 2 cores every rate here is the machine's
limit, not Redis's: the CPU per event on a primary is the figure that carries to a
bigger machine, and the output ends with what it means on paper.

    bash bench/run.sh cluster                    # about 3 minutes
    bash bench/run.sh cluster --seconds 5 --deliveries 10000
    bash bench/run.sh cluster --report bench/out/cluster_cpu.json   # tables of a saved run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from types import FrameType
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.support (the cluster harness) is not installed

import httpx  # noqa: E402
import redis  # noqa: E402
from procs import (  # noqa: E402
    LOAD_CPU,
    PYTHON,
    SECRET,
    SERVER_CPU,
    Server,
    http_status,
    pinned,
    stop,
    token,
    wait_until,
)
from scenarios import machine, wrk  # noqa: E402

from notify import keys, shards  # noqa: E402
from tests.support.cluster import MAX_PORT, LocalCluster  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

CHANNELS = 1000
BATCH = 1000
BATCH_CHANNELS = 50
HISTORY_MAX_EVENTS = 100_000  # per shard log
CHANNEL_HISTORY_MAX_EVENTS = 100  # per channel stream (CHANNELS of them)
FILL_S = 4
SINGLE_CONNECTIONS = 64  # as bench d
TOP_COMMANDS = 5  # per primary, by time spent (INFO commandstats)
BATCH_CONNECTIONS = 8

Result = dict[str, Any]
MODES = {"single": "single POST", "batch": "batch of 1,000"}


def low_port() -> int:
    """A free loopback port no higher than the cluster's highest (55535)."""
    for _ in range(200):
        port = free_port()
        if port <= MAX_PORT:
            return port
    raise RuntimeError(f"no free port below {MAX_PORT}")


# --- the load: wrk scripts, written at run time --------------------------------------

WRK_HEAD = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("NOTIFY_BENCH_TOKEN")
"""

SINGLE_LUA = (
    WRK_HEAD
    + """local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"channel":"bench.c' .. (n % %(channels)d) ..
    '","type":"bench","data":{"n":' .. n .. ',"p":"x"}}')
end
"""
)

BATCH_LUA = (
    WRK_HEAD
    + """local bodies, k = {}, 0
for b = 0, %(bodies)d - 1 do
  local events = {}
  for i = 1, %(batch)d do
    local c = b * %(per)d + (i %% %(per)d)
    events[i] = '{"channel":"bench.c' .. c .. '","type":"bench","data":{"n":' .. i .. ',"p":"x"}}'
  end
  bodies[b + 1] = '{"events":[' .. table.concat(events, ",") .. ']}'
end
request = function()
  k = k %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[k])
end
"""
)


def wrk_scripts(work: Path) -> tuple[str, str]:
    """The single and batch scripts (absolute paths: scenarios.wrk joins them to
    bench/wrk, which leaves an absolute path as it is)."""
    single, batch = work / "single.lua", work / "batch.lua"
    single.write_text(SINGLE_LUA.replace("%(channels)d", str(CHANNELS)))
    values = {"bodies": CHANNELS // BATCH_CHANNELS, "batch": BATCH, "per": BATCH_CHANNELS}
    batch.write_text(BATCH_LUA % values)
    return str(single), str(batch)


def batch_bodies() -> list[dict[str, Any]]:
    """The batch script's bodies, for the delivery phase's own publishing."""
    out = []
    for b in range(CHANNELS // BATCH_CHANNELS):
        events = [
            {"channel": f"bench.c{b * BATCH_CHANNELS + i % BATCH_CHANNELS}", "type": "bench",
             "data": {"n": i, "p": "x"}}
            for i in range(1, BATCH + 1)
        ]  # fmt: skip
        out.append({"events": events})
    return out


# --- processes -----------------------------------------------------------------------


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A vhost of the machine's RabbitMQ (127.0.0.1:5672, guest) for this run alone."""
    vhost = f"notify-bench-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@contextlib.contextmanager
def local_cluster(work: Path) -> Iterator[LocalCluster]:
    """3 primaries, a replica each, every node on the load CPU."""
    with LocalCluster(work, primaries=3, replicas=1) as cluster:
        if pinned(LOAD_CPU, []):
            for node in cluster.nodes:
                if node.server.pid is not None:
                    os.sched_setaffinity(node.server.pid, {int(LOAD_CPU)})
        yield cluster


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A process in a session of its own (its children die with it: kill_group)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def wait_http(proc: subprocess.Popen[bytes], port: int, what: str, timeout: float) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}); see its log")
        return http_status(port, "/readyz") == 200

    wait_until(ready, timeout, what)


@contextlib.contextmanager
def gateway(env: dict[str, str], work: Path) -> Iterator[Server]:
    """``notify serve``, one process, on the server CPU."""
    port = low_port()
    argv = [PYTHON, "-m", "notify", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = spawn(pinned(SERVER_CPU, argv), env, work / f"gateway-{port}.log")
    try:
        wait_http(proc, port, "notify gateway", 60)
        yield Server("notify", port, proc, "")
    finally:
        stop(proc)
        kill_group(proc)


@contextlib.contextmanager
def role(name: str, args: list[str], env: dict[str, str], work: Path) -> Iterator[None]:
    """A dispatcher or worker, ready (its health server's /readyz) before it yields."""
    health = low_port()
    argv = [PYTHON, "-m", "notify", name, *args]
    proc = spawn(argv, {**env, "NOTIFY_HEALTH_PORT": str(health)}, work / f"{name}.log")
    try:
        wait_http(proc, health, f"notify {name}", 120)
        yield
    finally:
        kill_group(proc)


# --- what Redis did ------------------------------------------------------------------


@dataclass
class Layout:
    """Where a configuration's keys live: primaries in slot order, the shard logs each
    holds, the ``{n}`` node, the replicas."""

    cluster: LocalCluster
    count: int
    primaries: list[int] = field(default_factory=list)
    slots: list[str] = field(default_factory=list)
    logs: dict[int, list[str]] = field(default_factory=dict)  # primary port -> shard logs
    control: int = 0  # the primary of the {n} tag
    replicas: list[int] = field(default_factory=list)
    clients: dict[int, redis.Redis] = field(default_factory=dict)

    def __post_init__(self) -> None:
        found = sorted(self.cluster.primaries().items(), key=lambda kv: kv[1][0][0])
        self.primaries = [port for port, _ in found]
        self.slots = [",".join(f"{a}-{b}" for a, b in ranges) for _, ranges in found]
        for s in range(self.count):
            home = self.cluster.primary_of(shards.slot(shards.tag(s, self.count)))
            self.logs.setdefault(home, []).append(keys.shard(s, self.count).log)
        self.control = self.cluster.primary_of(shards.slot(shards.BASE_TAG))
        self.replicas = [p for p in self.cluster.ports if p not in self.primaries]
        self.clients = {p: redis.Redis(port=p) for p in self.primaries}

    def label(self, i: int) -> tuple[str, str]:
        port = self.primaries[i]
        held = [log.split("}")[0].removeprefix("notify:") + "}" for log in self.logs.get(port, [])]
        if port == self.control and "{n}" not in held:
            held.append("{n}")
        return f"primary {i + 1} (slots {self.slots[i]})", ", ".join(held) or "nothing"

    def added(self) -> dict[int, int]:
        """Events ever added to the shard logs of each primary."""
        out = {}
        for port in self.primaries:
            total = 0
            for log in self.logs.get(port, []):
                with contextlib.suppress(redis.ResponseError):  # no such key yet
                    total += int(self.clients[port].xinfo_stream(log)["entries-added"])
            out[port] = total
        return out

    def settle(self, quiet: float = 0.5, timeout: float = 60.0) -> tuple[dict[int, int], float]:
        """Once no event has landed for ``quiet`` s (a request the load generator left
        still finishes in the gateway): the counts, and when the last event landed."""
        last, changed = self.added(), time.monotonic()
        deadline = changed + timeout
        while time.monotonic() - changed < quiet:
            if time.monotonic() > deadline:
                raise RuntimeError(f"events still landing after {timeout:.0f} s")
            time.sleep(0.05)
            now = self.added()
            if now != last:
                last, changed = now, time.monotonic()
        return last, changed

    def cpu(self) -> dict[int, float]:
        return {port: self.cluster.cpu_seconds(port) for port in self.cluster.ports}

    def commands(self) -> dict[int, dict[str, tuple[int, int]]]:
        """INFO commandstats of each primary: (calls, microseconds) per command."""
        out = {}
        for port, client in self.clients.items():
            stats = client.info("commandstats")
            out[port] = {
                name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
                for name, v in stats.items()
            }
        return out

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def window(layout: Layout, run: Callable[[], Result]) -> Result:
    """Redis's share of ``run``: events and CPU on each primary, replicas summed, and the
    commands that took the most time on each primary. The window closes when the last
    event has landed."""
    added0, _ = layout.settle()
    cpu0, commands0 = layout.cpu(), layout.commands()
    started = time.monotonic()
    out = run()
    finished = time.monotonic()
    added1, landed = layout.settle()
    cpu1, commands1 = layout.cpu(), layout.commands()
    wall = max(finished, landed) - started
    out["wall_s"] = round(wall, 2)
    out["primaries"] = []
    for i, port in enumerate(layout.primaries):
        spent = {
            name: (calls - commands0[port].get(name, (0, 0))[0],
                   usec - commands0[port].get(name, (0, 0))[1])
            for name, (calls, usec) in commands1[port].items()
        }  # fmt: skip
        top = sorted(spent.items(), key=lambda kv: -kv[1][1])[:TOP_COMMANDS]
        out["primaries"].append(
            {
                "port": port,
                "holds": layout.label(i)[1],
                "events": added1[port] - added0[port],
                "cpu_s": round(cpu1[port] - cpu0[port], 3),
                "commands": {name: {"calls": c, "usec": u} for name, (c, u) in top if u > 0},
            }
        )
    out["events"] = sum(p["events"] for p in out["primaries"])
    out["replicas_cpu_s"] = round(sum(cpu1[p] - cpu0[p] for p in layout.replicas), 3)
    out["events_per_s"] = round(out["events"] / wall)
    out["busiest_core_share"] = round(max(p["cpu_s"] for p in out["primaries"]) / wall, 3)
    return out


# --- the phases ----------------------------------------------------------------------


def base_env(url: str, broker: str, count: int) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")},
        "NOTIFY_REDIS_URL": url,
        "NOTIFY_SHARDS": str(count),
        "NOTIFY_BROKER_URL": broker,
        "NOTIFY_JWT_SECRET": SECRET,
        "NOTIFY_HISTORY_MAX_EVENTS": str(HISTORY_MAX_EVENTS),
        "NOTIFY_CHANNEL_HISTORY_MAX_EVENTS": str(CHANNEL_HISTORY_MAX_EVENTS),
    }


def publishing(work: Path, broker: str, count: int, seconds: int) -> Result:
    single, batch = wrk_scripts(work)
    with local_cluster(work / f"cluster-{count}") as cluster:
        layout = Layout(cluster, count)
        try:
            with gateway(base_env(cluster.url, broker, count), work) as gw:
                fill = wrk(gw, batch, "/v1/events/batch", BATCH_CONNECTIONS, FILL_S)
                if not fill["requests_per_s"] or fill["non_2xx"]:
                    raise RuntimeError(f"the fill failed: {fill}")
                out: Result = {"shards": count, "layout": layout_of(layout)}
                out["single"] = window(
                    layout, lambda: wrk(gw, single, "/v1/events", SINGLE_CONNECTIONS, seconds)
                )
                out["batch"] = window(
                    layout, lambda: wrk(gw, batch, "/v1/events/batch", BATCH_CONNECTIONS, seconds)
                )
            return out
        finally:
            layout.close()


def layout_of(layout: Layout) -> list[dict[str, Any]]:
    return [
        {"port": port, "slots": layout.slots[i], "holds": layout.label(i)[1]}
        for i, port in enumerate(layout.primaries)
    ]


def delivering(work: Path, broker: str, events: int) -> Result:
    count = 3
    with local_cluster(work / "cluster-deliver") as cluster:
        layout = Layout(cluster, count)
        env = {
            **base_env(cluster.url, broker, count),
            "NOTIFY_ALLOWED_PRIVATE_TARGETS": "127.0.0.1",
            "NOTIFY_WEBHOOK_TARGET_RATE": "0",  # no per-target pacing
        }
        receiver_port = low_port()
        receiver = spawn(
            [PYTHON, str(BENCH / "webhook_receiver.py"), str(receiver_port), str(work / "arr")],
            env,
            work / "receiver.log",
        )
        counter = layout.clients[layout.control]
        try:
            with (
                gateway(env, work) as gw,
                role("dispatcher", [], env, work),
                role("worker", ["--concurrency", "2"], env, work),
                httpx.Client(
                    base_url=f"http://127.0.0.1:{gw.port}",
                    headers={"Authorization": f"Bearer {token()}"},
                    timeout=30,
                    trust_env=False,
                ) as client,
            ):
                sink = {"kind": "webhook", "url": f"http://127.0.0.1:{receiver_port}/hook"}
                made = client.post("/v1/subscriptions", json={"channel": "bench.>", "sink": sink})
                if made.status_code != 201:
                    raise RuntimeError(f"subscription refused: {made.status_code} {made.text}")
                bodies = batch_bodies()

                def delivered() -> int:
                    return int(counter.hget(keys.DELIVERY_METRICS, "webhook:delivered") or 0)

                def publish_and_wait(n: int, timeout: float) -> Result:
                    target = delivered() + n
                    for k in range(n // BATCH):
                        r = client.post("/v1/events/batch", json=bodies[k % len(bodies)])
                        if r.status_code != 202:
                            raise RuntimeError(f"batch refused: {r.status_code} {r.text[:200]}")
                    published = time.monotonic()
                    deadline = published + timeout
                    while delivered() < target:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{target - delivered()} of {n} not delivered")
                        time.sleep(0.02)
                    return {"delivered": n}

                publish_and_wait(BATCH, 120)  # warm up: connections, scripts, pool
                out = window(layout, lambda: publish_and_wait(events, 600))
                out["delivered_per_s"] = round(events / out["wall_s"])
                out["layout"] = layout_of(layout)
                return out
        finally:
            kill_group(receiver)
            layout.close()


# --- the figures ---------------------------------------------------------------------


def us(cpu_s: float, events: int) -> float | None:
    return None if not events else 1e6 * cpu_s / events


def num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def primary_cell(p: Result) -> str:
    return f"{p['events']:,} ev, {p['cpu_s']:.2f} s, {num(us(p['cpu_s'], p['events']))} us/ev"


def gateway_us(w: Result) -> float | None:
    return us(w["server_cpu_pct"] * w["wall_s"] / 100, w["events"])


def row(label: str, cells: list[str]) -> str:
    return f"| {label} | " + " | ".join(cells) + " |"


def publish_table(runs: list[Result]) -> Iterator[str]:
    yield row("measure", [f"{r['shards']} shard{'s' if r['shards'] > 1 else ''}" for r in runs])
    yield "| --- |" + " --- |" * len(runs)
    for mode, name in MODES.items():
        ws = [r[mode] for r in runs]
        yield row(f"{name}: events/s reached", [f"{w['events_per_s']:,}" for w in ws])
        for i in range(3):
            cells = [
                f"{primary_cell(w['primaries'][i])} ({r['layout'][i]['holds']})"
                for r, w in zip(runs, ws, strict=True)
            ]
            yield row(f"{name}: primary {i + 1} (slots {runs[0]['layout'][i]['slots']})", cells)
        share = [f"{w['busiest_core_share']:.2f}" for w in ws]
        yield row(f"{name}: busiest primary, CPU s per s of load", share)
        total = [num(us(sum(p["cpu_s"] for p in w["primaries"]), w["events"])) for w in ws]
        yield row(f"{name}: all primaries, CPU us per event", total)
        replicas = [num(us(w["replicas_cpu_s"], w["events"])) for w in ws]
        yield row(f"{name}: replicas (3), CPU us per event", replicas)
        gw = [f"{w['server_cpu_pct']:.0f} % / {num(gateway_us(w))}" for w in ws]
        yield row(f"{name}: gateway CPU % / us per event", gw)


def pub_cost(runs: list[Result], shards_: int, mode: str, port_index: int) -> float | None:
    """Phase 1's CPU per published event on a primary (same configuration and mode)."""
    for r in runs:
        if r["shards"] == shards_:
            p = r[mode]["primaries"][port_index]
            return us(p["cpu_s"], p["events"])
    return None


def delivery_table(d: Result, runs: list[Result]) -> Iterator[str]:
    n = d["delivered"]
    heads = ["events landed", "CPU s", "us per delivered event", "less publishing (phase 1)"]
    yield row("delivered (3 shards, 1 webhook subscription)", heads)
    yield "| --- | --- | --- | --- | --- |"
    for i, p in enumerate(d["primaries"]):
        c_pub = pub_cost(runs, 3, "batch", i)
        own = None if c_pub is None else us(p["cpu_s"] - p["events"] * c_pub / 1e6, n)
        label = f"primary {i + 1} (slots {d['layout'][i]['slots']}; {p['holds']})"
        yield row(
            label, [f"{p['events']:,}", f"{p['cpu_s']:.2f}", num(us(p["cpu_s"], n)), num(own)]
        )
    yield f"| replicas (3) | | {d['replicas_cpu_s']:.2f} | {num(us(d['replicas_cpu_s'], n))} | |"
    yield f"| delivered events/s | {d['delivered_per_s']:,} ({n:,} in {d['wall_s']:.1f} s) | | | |"


def breakdown(runs: list[Result], d: Result | None) -> Iterator[str]:
    """What each busy primary was asked per event (INFO commandstats): calls per event
    of the commands that took the longest, and each one's share of the time spent in
    them. Those times are wall-clock (a preempted command counts the wait) and a
    script's includes the commands it calls, so the calls are the firm figure."""
    cases = [(f"{r['shards']} shard(s), {mode}", r[mode], None) for r in runs for mode in MODES]
    if d is not None:
        cases.append(("3 shards, delivering (per delivered event)", d, d["delivered"]))
    for label, w, per in cases:
        for i, p in enumerate(w["primaries"]):
            n = per or p["events"]
            if not n or p["cpu_s"] < 0.01:
                continue
            inside = sum(v["usec"] for v in p["commands"].values()) or 1
            parts = ", ".join(
                f"{k} {v['calls'] / n:.3g}/ev ({100 * v['usec'] / inside:.0f} %)"
                for k, v in p["commands"].items()
            )
            yield f"{label}, primary {i + 1}: CPU {1e6 * p['cpu_s'] / n:.1f} us/ev; {parts}"


def on_paper(runs: list[Result], d: Result | None) -> Iterator[str]:
    """What the per-event figures mean for a machine with a core per primary."""
    one = next((r for r in runs if r["shards"] == 1), None)
    most = max(runs, key=lambda r: r["shards"])
    if one is None:
        return
    n = most["shards"]
    for mode, name in (("single", "single POSTs"), ("batch", "batches")):
        busiest = max(one[mode]["primaries"], key=lambda p: p["cpu_s"])
        c1 = us(busiest["cpu_s"], busiest["events"])
        cn = max((us(p["cpu_s"], p["events"]) or 0.0) for p in most[mode]["primaries"])
        g = gateway_us(most[mode])
        if not c1 or not cn or n == 1:
            continue
        line = (
            f"on paper, {name}: one shard's primary spends c_pub = {c1:.1f} us per event, so"
            f" it sustains about {1e6 / c1:,.0f} events/s on a core of its own; at {n} shards"
            f" each primary spends {cn:.1f} us per event"
        )
        if cn > 1.05 * c1:  # the gateway's script calls carry a shard's part of its events
            line += " (fewer events per script call)"
        line += f", so {n} shards on {n} primaries sustain about {n * 1e6 / cn:,.0f} events/s"
        if g:
            line += f"; a gateway core carries about {1e6 / g:,.0f} of them ({g:.1f} us/event)"
        yield line + "."
    if d is not None:
        i = next(k for k, p in enumerate(d["primaries"]) if "{n}" in p["holds"])
        p = d["primaries"][i]
        c_pub = pub_cost(runs, 3, "batch", i) or 0.0
        own = us(p["cpu_s"] - p["events"] * c_pub / 1e6, d["delivered"])
        if own:
            yield (
                f"on paper, deliveries: the {{n}} node (subscriptions, delivery records, limits,"
                f" leases) spends about {own:.1f} us per delivered event beyond publishing,"
                f" so its primary caps deliveries at about {1e6 / own:,.0f}/s on one core,"
                f" whatever the number of shards: with webhooks it binds before the shards."
            )


def report(res: Result) -> None:
    print()
    for line in publish_table(res["runs"]):
        print(line)
    if "deliver" in res:
        print()
        for line in delivery_table(res["deliver"], res["runs"]):
            print(line)
    print()
    print("what each busy primary was asked, per event (INFO commandstats; % of command time):")
    for line in breakdown(res["runs"], res.get("deliver")):
        print("  " + line)
    print()
    print(
        "2 cores shared by the gateway, the 6 nodes and the load generator: the rates are the"
        " machine's; CPU per event on a primary is what carries to a bigger one."
    )
    for line in on_paper(res["runs"], res.get("deliver")):
        print(line)


def main() -> None:
    p = argparse.ArgumentParser(description="Redis CPU per event per primary of a cluster")
    p.add_argument("--seconds", type=int, default=8, help="each wrk window (8)")
    p.add_argument("--deliveries", type=int, default=20_000, help="events delivered (20,000)")
    p.add_argument("--shards", default="1,3", help="publish configurations (1,3)")
    p.add_argument("--no-deliver", action="store_true", help="skip the delivery phase")
    p.add_argument("--timeout", type=int, default=900, help="the whole run's bound, s (900)")
    p.add_argument("--out", default=str(BENCH / "out" / "cluster_cpu.json"))
    p.add_argument("--report", metavar="JSON", help="print the tables of a saved run, no run")
    args = p.parse_args()
    if args.report:
        report(json.loads(Path(args.report).read_text()))
        return
    if args.deliveries % BATCH:
        p.error(f"--deliveries must be a multiple of {BATCH}")

    def overrun(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"the run took over {args.timeout} s")

    signal.signal(signal.SIGALRM, overrun)
    signal.alarm(args.timeout)
    res: Result = {"machine": machine(), "runs": []}
    print(json.dumps(res["machine"]), flush=True)
    with TemporaryDirectory(prefix="notify-bench-") as tmp, rabbitmq_vhost() as broker:
        work = Path(tmp)
        for count in (int(c) for c in args.shards.split(",")):
            print(f"== publish, NOTIFY_SHARDS={count} ...", flush=True)
            run = publishing(work, broker, count, args.seconds)
            res["runs"].append(run)
            print(f"   {json.dumps(run)}", flush=True)
        if not args.no_deliver:
            print("== deliver, NOTIFY_SHARDS=3 ...", flush=True)
            res["deliver"] = delivering(work, broker, args.deliveries)
            print(f"   {json.dumps(res['deliver'])}", flush=True)
    signal.alarm(0)
    res["loadavg_after"] = os.getloadavg()
    report(res)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(res, indent=2) + "\n")
    shown = out_path.relative_to(ROOT) if out_path.is_relative_to(ROOT) else out_path
    print(f"\nfull figures: {shown}")


if __name__ == "__main__":
    main()
