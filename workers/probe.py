"""``python -m notify.workers.probe dispatcher|worker``: exit 0 when this host's
dispatcher or Celery worker is alive and talking to its store or broker, 1 otherwise.

For container health checks (docker-compose.yml), run inside the role's container:
- dispatcher: a Redis connection named after this host's dispatcher (``CLIENT LIST``)
  sent a command within ``STALE_SECONDS`` (a dispatcher blocks on XREADGROUP a second at
  a time, so a live one is never idle longer; a wedged or disconnected one is);
- worker: a Celery worker named after this host answers a ping through the broker.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from notify.redis.client import SyncRedisCluster, sync_client
from notify.settings import Settings, load
from notify.workers.celery_app import create_app
from notify.workers.dispatcher import DISPATCHER_CLIENT

STALE_SECONDS = 30.0


def dispatcher_alive(settings: Settings, host: str) -> bool:
    try:
        client = sync_client(settings.redis_url, timeout=settings.redis_timeout_seconds)
    except Exception:  # a cluster client reads the slot map as it is made
        return False
    try:
        if isinstance(client, SyncRedisCluster):
            # the dispatcher's connections are on the nodes it reads from: ask them all
            found: Any = client.client_list(_type="normal", target_nodes=client.ALL_NODES)
            clients: Any = [c for per_node in found.values() for c in per_node]
        else:
            clients = client.client_list(_type="normal")
    except Exception:  # Redis down or hung: not healthy, whatever the reason
        return False
    finally:
        client.close()
    prefix = f"{DISPATCHER_CLIENT}{host}-"
    return any(
        _text(c.get("name", "")).startswith(prefix) and int(c["idle"]) < STALE_SECONDS
        for c in clients
    )


def worker_alive(settings: Settings, host: str) -> bool:
    app = create_app(settings)
    try:
        # only this host's workers answer (their names end in @host), and the first
        # answer ends the wait: a live worker is known in milliseconds, not a timeout
        replies: Any = app.control.ping(
            timeout=min(5.0, settings.redis_timeout_seconds + 2),
            pattern=f"*@{host}",
            matcher="glob",
            limit=1,
        )
    except Exception:  # the broker is unreachable
        return False
    finally:
        app.close()
    return any(name.endswith(f"@{host}") for reply in replies or [] for name in reply)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in (["dispatcher"], ["worker"]):
        print("usage: python -m notify.workers.probe dispatcher|worker", file=sys.stderr)
        return 2
    settings = load()
    host = socket.gethostname()
    alive = dispatcher_alive if args[0] == "dispatcher" else worker_alive
    if alive(settings, host):
        return 0
    print(f"no live {args[0]} on {host}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
