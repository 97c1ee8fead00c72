#!/usr/bin/env bash
# notify benchmarks: `make bench` or `bash bench/run.sh [a b c d e w]`.
# The server under test is pinned to CPU 0, Redis and every load process to CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "no .venv: run 'make venv' first" >&2
  exit 1
fi
command -v redis-server >/dev/null || { echo "redis-server is needed (apt-get install redis-server)" >&2; exit 1; }
# `bash bench/run.sh chaos [--quick] [flags]`: the fault soak of issue 5 (bench/chaos.py).
if [ "${1:-}" = chaos ]; then shift; exec "$PY" bench/chaos.py "$@"; fi
command -v taskset >/dev/null || echo "warning: no taskset; processes will not be pinned" >&2

# wrk drives the ingest scenario; installed through apt when missing and we may.
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; } \
      || echo "warning: could not install wrk; ingest is skipped" >&2
  else
    echo "warning: wrk not installed; ingest is skipped" >&2
  fi
fi

# `bash bench/run.sh tracing [--rounds N] [--seconds S] [--ratio R] [--traced-producer]`:
# single POST/s and the gateway's CPU per request with tracing off and on; `--cpu N`: the
# CPU tracing adds to N publishes, measured in process (bench/tracing_cost.py).
if [ "${1:-}" = tracing ]; then shift; exec "$PY" bench/tracing_cost.py "$@"; fi

# `bash bench/run.sh cluster [--seconds S] [--deliveries N]`: Redis CPU per published and
# per delivered event on each primary of a local Redis Cluster (3 primaries, a replica
# each), 1 shard beside 3 (issue 14; bench/cluster_cpu.py; needs redis-cli and the
# machine's RabbitMQ on 127.0.0.1:5672).
if [ "${1:-}" = cluster ]; then shift; exec "$PY" bench/cluster_cpu.py "$@"; fi

# The peers run on notify's Python (.venv's): a peer venv of another is made afresh.
BASE=$("$PY" -c 'import sys; print(sys._base_executable)')
VERSION=$("$PY" -c 'import sys; print(sys.version_info[:2])')
for venv in bench/.peer-venv bench/.sio-venv; do
  if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c 'import sys; print(sys.version_info[:2])')" != "$VERSION" ]; then
    rm -rf "$venv"
  fi
done
# The naive peer lives in its own venv: broadcaster 0.3.1 needs redis-py 7.4.
PEER=bench/.peer-venv
if [ ! -x "$PEER/bin/uvicorn" ]; then
  "$BASE" -m venv "$PEER"
  "$PEER/bin/pip" install -q fastapi 'uvicorn[standard]' sse-starlette \
    'broadcaster==0.3.1' 'redis==7.4.*'
fi
# The naive WebSocket peer (scenario w): python-socketio with its Redis manager, own venv.
SIO=bench/.sio-venv
if [ ! -x "$SIO/bin/uvicorn" ]; then
  "$BASE" -m venv "$SIO"
  "$SIO/bin/pip" install -q 'python-socketio==5.18.1' 'uvicorn[standard]==0.55.0' 'redis==8.2.0'
fi

echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
exec "$PY" bench/scenarios.py "$@"
