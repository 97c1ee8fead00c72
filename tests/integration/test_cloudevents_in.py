"""CloudEvents in, over real HTTP on the fast path and in-process on the FastAPI routes:
both must store the same events and answer the same errors."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from notify.api.app import create_app
from notify.settings import Settings
from tests.support.factories import TokenMaker
from tests.support.ports import free_port
from tests.support.procs import Gateway
from tests.support.redis import RedisServer

CE = {"specversion": "1.0", "source": "//shop", "type": "order.created"}
STRUCTURED = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


@pytest.fixture(params=["fast path", "routes"])
def api(
    request: pytest.FixtureRequest,
    make_token: TokenMaker,
    jwt_secret: str,
    redis_server: RedisServer,
) -> Iterator[httpx.Client]:
    auth = {"authorization": "Bearer " + make_token("p", publish=["orders.>"], subscribe=[">"])}
    if request.param == "fast path":
        gateway: Gateway = request.getfixturevalue("gateway_factory")(redis_server.url)
        with httpx.Client(base_url=gateway.base_url, headers=auth, trust_env=False) as c:
            yield c
    else:
        # the FastAPI app alone, without the fast path in front of it
        settings = Settings(redis_url=redis_server.url, jwt_secret=jwt_secret)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "the in-process gateway did not start"
            time.sleep(0.02)
        try:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, headers=auth, trust_env=False) as c:
                yield c
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def history(api: httpx.Client, channel: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = api.get("/v1/events", params={"channel": channel}).json()[
        "events"
    ]
    return events


def post(api: httpx.Client, path: str, body: Any, headers: dict[str, str]) -> Any:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return api.post(path, content=content, headers=headers)


def test_structured_batched_and_binary(api: httpx.Client) -> None:
    one = {**CE, "id": "1", "channel": "orders.eu", "data": {"n": 1}, "subject": "s"}
    r = post(api, "/v1/events", one, STRUCTURED)
    assert r.status_code == 202, r.text
    assert r.json()["channel"] == "orders.eu"
    first = r.json()["id"]
    # source + id is the idempotency key: a repeat stores nothing new
    assert post(api, "/v1/events", one, STRUCTURED).json()["id"] == first
    batch = [{**CE, "id": "2", "data": 2}, {**CE, "id": "3", "data_base64": "aGk="}]
    r = post(api, "/v1/events/batch?channel=orders.us", batch, BATCH)
    assert r.status_code == 202, r.text
    assert len(r.json()["ids"]) == 2
    binary = {"ce-specversion": "1.0", "ce-id": "4", "ce-source": "//shop", "ce-type": "x.y"}
    r = post(api, "/v1/events?channel=orders.eu", b"\x00\x01", {**binary, "content-type": "a/b"})
    assert r.status_code == 202, r.text
    got = history(api, "orders.eu")
    assert [e["ce"]["id"] for e in got] == ["1", "4"]
    assert got[0]["data"] == {"n": 1} and got[0]["type"] == "order.created"
    assert got[0]["ce"] == {"specversion": "1.0", "id": "1", "source": "//shop", "subject": "s"}
    assert got[1]["data"] == base64.b64encode(b"\x00\x01").decode()
    assert got[1]["ce"]["data_base64"] is True and got[1]["ce"]["datacontenttype"] == "a/b"
    us = history(api, "orders.us")
    assert [(e["data"], e["ce"]["id"]) for e in us] == [(2, "2"), ("aGk=", "3")]


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        ({**CE, "channel": "orders.eu"}, STRUCTURED, "id"),
        (
            {**CE, "id": "1", "specversion": "9.9", "channel": "orders.eu"},
            STRUCTURED,
            "specversion",
        ),
        ({**CE, "id": "1", "channel": "orders.eu", "data_base64": "%%"}, STRUCTURED, "data_base64"),
        ({**CE, "id": "1", "channel": "orders..eu"}, STRUCTURED, "channel"),
        ({**CE, "id": "1"}, STRUCTURED, "channel"),
        ([{**CE, "id": "1", "channel": "orders.eu"}, {"id": "2"}], BATCH, "events[1].specversion"),
        (b"{}", {"ce-specversion": "1.0", "ce-id": "1", "ce-type": "t"}, "source"),
        (b"{", STRUCTURED, "body"),
    ],
)
def test_bad_cloudevents_name_the_attribute(
    api: httpx.Client, body: Any, headers: dict[str, str], field: str
) -> None:
    r = post(api, "/v1/events", body, headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field
    assert history(api, "orders.>") == []


def test_no_right_to_the_channel(api: httpx.Client) -> None:
    r = post(api, "/v1/events", {**CE, "id": "1", "channel": "secret"}, STRUCTURED)
    assert r.status_code == 403
