"""A whole delivery stack for integration tests: gateway, dispatcher, Celery worker,
each a real process on the test's Redis, and an httpx client speaking to the API."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.ports import free_port
from tests.support.procs import Gateway, Proc

FAST_ENV: dict[str, object] = {
    "NOTIFY_RETRY_SCHEDULE": "0.2,0.2,0.2",
    "NOTIFY_ALLOW_PRIVATE_TARGETS": "1",
    "NOTIFY_WEBHOOK_TIMEOUT_SECONDS": "1",
    "NOTIFY_DELIVERY_LEASE_SECONDS": "3",
    "NOTIFY_DISPATCH_CLAIM_IDLE_SECONDS": "2",
    "NOTIFY_SWEEP_INTERVAL_SECONDS": "0.05",
    "NOTIFY_WEBHOOK_TARGET_RATE": "0",
}


class Stack:
    def __init__(
        self,
        gateway: Gateway,
        directory: Path,
        env: Mapping[str, object],
        token: str,
    ) -> None:
        self.gateway = gateway
        self.directory = directory
        self.env = dict(env)
        self.procs: list[Proc] = []
        self.client = httpx.Client(
            base_url=gateway.base_url,
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
            trust_env=False,
        )

    def role(self, *args: str, name: str, **env: object) -> Proc:
        proc = Proc(list(args), directory=self.directory, env={**self.env, **env}, name=name)
        self.procs.append(proc)
        return proc.start()

    def dispatcher(self, name: str = "dispatcher", **env: object) -> Proc:
        env.setdefault("NOTIFY_HEALTH_PORT", free_port())
        return self.role("dispatcher", name=name, **env)

    def worker(self, concurrency: int = 2, name: str = "worker", **env: object) -> Proc:
        env.setdefault("NOTIFY_HEALTH_PORT", free_port())
        return self.role("worker", "--concurrency", str(concurrency), name=name, **env)

    def wait_ready(self, proc: Proc, timeout: float = 120.0) -> None:
        """Until the role answers /readyz (a worker: its Celery worker consumes); a
        Celery worker takes long to start on a busy machine."""
        port = proc.env["NOTIFY_HEALTH_PORT"]
        proc.wait_http_ready(f"http://127.0.0.1:{port}/readyz", timeout)

    def close(self) -> None:
        self.client.close()
        for proc in self.procs:
            proc.kill(signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.log_tail()}" for p in self.procs)

    # --- API helpers ---------------------------------------------------------

    def subscribe(self, channel: str, sink: dict[str, Any], **extra: Any) -> dict[str, Any]:
        r = self.client.post("/v1/subscriptions", json={"channel": channel, "sink": sink, **extra})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def publish(self, channel: str, type_: str = "thing.happened", data: Any = None) -> str:
        r = self.client.post("/v1/events", json={"channel": channel, "type": type_, "data": data})
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    def publish_many(self, events: list[dict[str, Any]]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(events), 1000):
            r = self.client.post("/v1/events/batch", json={"events": events[start : start + 1000]})
            assert r.status_code == 202, r.text
            ids += r.json()["ids"]
        return ids

    def deliveries(self, subscription: str, status: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(1000):
            params: dict[str, Any] = {"subscription": subscription, "limit": 500}
            if status:
                params["status"] = status
            if cursor:
                params["cursor"] = cursor
            r = self.client.get("/v1/deliveries", params=params)
            assert r.status_code == 200, r.text
            out += r.json()["deliveries"]
            cursor = r.json()["next"]
            if cursor is None:
                return out
        raise AssertionError("delivery listing did not end")

    def wait_for(
        self, what: str, check: Callable[[], Any], timeout: float = 15.0, every: float = 0.05
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(every)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")

    def wait_status(
        self, subscription: str, status: str, count: int = 1, timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        def check() -> list[dict[str, Any]] | None:
            found = self.deliveries(subscription, status)
            return found if len(found) >= count else None

        result: list[dict[str, Any]] = self.wait_for(
            f"{count} {status} deliveries of {subscription}", check, timeout
        )
        return result

    def wait_events(
        self, subscription: str, status: str, events: list[str], timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        """Wait until each of these events has a record in this status (not just as many
        records: earlier events' records count towards a bare count)."""
        wanted = set(events)

        def check() -> list[dict[str, Any]] | None:
            found = self.deliveries(subscription, status)
            return found if wanted <= {d["event_id"] for d in found} else None

        result: list[dict[str, Any]] = self.wait_for(
            f"{len(wanted)} given events {status} for {subscription}", check, timeout
        )
        return result


def make_stack(
    gateway_factory: GatewayFactory,
    make_token: TokenMaker,
    directory: Path,
    redis_url: str,
    *,
    workers: int = 1,
    **env: object,
) -> Stack:
    full_env: dict[str, object] = {**FAST_ENV, **env, "NOTIFY_REDIS_URL": redis_url}
    gateway = gateway_factory(redis_url, **full_env)
    token = make_token("alice", publish=[">"], subscribe=["orders.>", "alerts.>"])
    stack = Stack(gateway, directory, full_env, token)
    stack.dispatcher()
    for n in range(workers):
        stack.worker(name=f"worker{n}")
    for proc in stack.procs:
        stack.wait_ready(proc)
    return stack
