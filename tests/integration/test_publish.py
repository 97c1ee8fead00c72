"""Publishing, history, validation and authorization over real HTTP."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import jwt
import pytest

from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import Gateway


def client(gw: Gateway, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=gw.base_url, headers=headers, trust_env=False, timeout=30)


def history(gw: Gateway, token: str, channel: str, **params: Any) -> dict[str, Any]:
    with client(gw, token) as c:
        r = c.get("/v1/events", params={"channel": channel, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def assert_problem(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"].startswith("http") and body["title"] and body["detail"]
    if field is not None:
        assert body.get("field") == field, body
    return body


@pytest.fixture
def writer(make_token: TokenMaker) -> str:
    return make_token(publish=[">"], subscribe=[">"])


def test_publish_then_history_pages(gateway: Gateway, writer: str) -> None:
    with client(gateway, writer) as c:
        ids = [
            c.post("/v1/events", json={"channel": "h.a", "type": "t", "data": i}).json()["id"]
            for i in range(5)
        ]
        c.post("/v1/events", json={"channel": "h.b.c", "type": "t", "data": None})
    page = history(gateway, writer, "h.a", limit=2)
    assert [e["id"] for e in page["events"]] == ids[:2] and page["next"] == ids[1]
    page = history(gateway, writer, "h.a", after=page["next"], limit=10)
    assert [e["id"] for e in page["events"]] == ids[2:] and page["next"] is None
    assert [e["data"] for e in history(gateway, writer, "h.>")["events"]] == [0, 1, 2, 3, 4, None]
    assert len(history(gateway, writer, "h.*")["events"]) == 5


LAST_ID = f"{2**64 - 1}-{2**64 - 1}"


@pytest.mark.parametrize("channel", ["edge.a", "edge.*", "edge.>"])
def test_history_after_the_ends_of_the_id_space(
    gateway: Gateway, writer: str, channel: str
) -> None:
    """Any valid cursor is an answer, never a 500: after the last possible id nothing
    can follow (Redis refuses it as an exclusive start), after 0-0 everything does."""
    with client(gateway, writer) as c:
        first = c.post("/v1/events", json={"channel": "edge.a", "type": "t", "data": 1})
    assert [e["id"] for e in history(gateway, writer, channel, after="0-0")["events"]] == [
        first.json()["id"]
    ]
    for after in (LAST_ID, f"{2**64 - 1}-0", f"{2**64 - 2}-{2**64 - 1}"):
        assert history(gateway, writer, channel, after=after) == {"events": [], "next": None}
    with client(gateway, writer) as c:
        assert_problem(
            c.get("/v1/events", params={"channel": channel, "after": f"{2**64}-0"}), 400, "after"
        )


def test_idempotency_key_returns_first_answer_and_stores_nothing_new(
    gateway: Gateway, writer: str, make_token: TokenMaker
) -> None:
    event = {"channel": "idem", "type": "t", "data": 1}
    with client(gateway, writer) as c:
        first = c.post("/v1/events", json=event, headers={"Idempotency-Key": "k1"})
        again = c.post("/v1/events", json={**event, "data": 2}, headers={"Idempotency-Key": "k1"})
        batch = c.post(
            "/v1/events/batch", json={"events": [event, event]}, headers={"Idempotency-Key": "k2"}
        )
        batch_again = c.post(
            "/v1/events/batch", json={"events": [event, event]}, headers={"Idempotency-Key": "k2"}
        )
        too_long = c.post("/v1/events", json=event, headers={"Idempotency-Key": "x" * 256})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert batch.json() == batch_again.json() and len(batch.json()["ids"]) == 2
    assert_problem(too_long, 422, "Idempotency-Key")
    # another subject's identical key is its own
    other = make_token(sub="bob", publish=[">"])
    with client(gateway, other) as c:
        theirs = c.post("/v1/events", json=event, headers={"Idempotency-Key": "k1"})
    assert theirs.json()["id"] != first.json()["id"]
    assert len(history(gateway, writer, "idem")["events"]) == 4


def test_integers_are_kept_exactly_or_refused(gateway: Gateway, writer: str) -> None:
    """64-bit integers round-trip exactly; a larger one would come back as a rounded
    float, so it is refused (single, batch) and nothing is stored."""
    edge = b'{"channel":"ints","type":"t","data":[18446744073709551615,-9223372036854775808]}'
    big = b'{"channel":"ints","type":"t","data":123456789012345678901234567890}'
    with client(gateway, writer) as c:
        assert c.post("/v1/events", content=edge).status_code == 202
        assert (
            "send it as a string"
            in assert_problem(c.post("/v1/events", content=big), 422, "body")["detail"]
        )
        batch = b'{"events":[' + edge + b"," + big + b"]}"
        assert_problem(c.post("/v1/events/batch", content=batch), 422, "body")
    [stored] = history(gateway, writer, "ints")["events"]
    assert stored["data"] == [2**64 - 1, -(2**63)]


def test_batch_is_all_or_nothing_and_names_the_bad_index(gateway: Gateway, writer: str) -> None:
    events: list[dict[str, Any]] = [{"channel": "b", "type": "t", "data": i} for i in range(5)]
    events[3]["type"] = "bad type!"
    with client(gateway, writer) as c:
        r = c.post("/v1/events/batch", json={"events": events})
        assert_problem(r, 422, "events[3].type")
        r = c.post("/v1/events/batch", json={"events": []})
        assert_problem(r, 422, "events")
        r = c.post(
            "/v1/events/batch", json={"events": [{"channel": "b", "type": "t", "data": 0}] * 1001}
        )
        assert_problem(r, 422, "events")
    assert history(gateway, writer, "b")["events"] == []


BAD_EVENTS: list[tuple[Any, int, str | None]] = [
    ({"type": "t", "data": 1}, 422, "channel"),
    ({"channel": "a..b", "type": "t", "data": 1}, 422, "channel"),
    ({"channel": "a.*", "type": "t", "data": 1}, 422, "channel"),
    ({"channel": "x" * 65, "type": "t", "data": 1}, 422, "channel"),
    ({"channel": 5, "type": "t", "data": 1}, 422, "channel"),
    ({"channel": "a", "data": 1}, 422, "type"),
    ({"channel": "a", "type": "", "data": 1}, 422, "type"),
    ({"channel": "a", "type": "t" * 129, "data": 1}, 422, "type"),
    ({"channel": "a", "type": "t"}, 422, "data"),
    ({"channel": "a", "type": "t", "data": 1, "origin": "o" * 129}, 422, "origin"),
    ({"channel": "a", "type": "t", "data": 1, "origin": 7}, 422, "origin"),
    ({"channel": "a", "type": "t", "data": 1, "extra": 1}, 422, "extra"),
    ([1, 2], 422, "body"),
    ("string", 422, "body"),
    ({"channel": "a", "type": "t", "data": "x" * 70000}, 413, None),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_EVENTS)
def test_bad_events_get_clear_errors(
    gateway: Gateway, writer: str, body: Any, status: int, field: str | None
) -> None:
    with client(gateway, writer) as c:
        assert_problem(c.post("/v1/events", json=body), status, field)


def test_bad_bodies(gateway: Gateway, writer: str) -> None:
    with client(gateway, writer) as c:
        assert_problem(c.post("/v1/events", content=b"{not json"), 422, "body")
        assert_problem(c.post("/v1/events", content=b""), 422, "body")
        deep = b"[" * 5000 + b"]" * 5000
        r = c.post("/v1/events", content=b'{"channel":"a","type":"t","data":' + deep + b"}")
        assert r.status_code in (413, 422)
        huge = b"x" * (9 * 1024 * 1024)
        assert_problem(c.post("/v1/events/batch", content=huge), 413)
        assert_problem(c.get("/v1/events", params={"channel": "a", "limit": 0}), 422, "limit")
        assert_problem(c.get("/v1/events", params={"channel": "a", "limit": 5000}), 422, "limit")
        assert_problem(c.get("/v1/events", params={"channel": "a", "after": "zzz"}), 400, "after")
        assert_problem(c.get("/v1/events", params={"channel": "a.>.b"}), 422, "channel")
        assert_problem(
            c.get("/v1/stream", params={"channel": "a", "last_event_id": "1-x"}),
            400,
            "last_event_id",
        )
        assert_problem(
            c.get("/v1/stream", params={"channel": "a"}, headers={"Last-Event-ID": "-1"}),
            400,
            "Last-Event-ID",
        )
        assert_problem(
            c.get(
                "/v1/stream", params={"channel": "a", "last_event_id": "99999999999999999999999-0"}
            ),
            400,
        )
    assert history(gateway, writer, "a")["events"] == []


def test_authentication_sources_and_failures(
    gateway: Gateway, make_token: TokenMaker, jwt_secret: str
) -> None:
    event = {"channel": "auth.x", "type": "t", "data": 1}
    good = make_token(publish=["auth.>"], subscribe=["auth.>"])
    with httpx.Client(base_url=gateway.base_url, trust_env=False) as c:
        assert_problem(c.post("/v1/events", json=event), 401)
        assert_problem(
            c.post("/v1/events", json=event, headers={"Authorization": "Bearer nonsense"}), 401
        )
        assert_problem(c.post("/v1/events", json=event, headers={"Authorization": good}), 401)
        expired = make_token(publish=[">"], ttl=-5)
        assert_problem(
            c.post("/v1/events", json=event, headers={"Authorization": f"Bearer {expired}"}), 401
        )
        forged = jwt.encode(
            {"sub": "alice", "publish": [">"]},
            "another-secret-of-32-chars!!!!!!",
            algorithm="HS256",
        )
        assert_problem(
            c.post("/v1/events", json=event, headers={"Authorization": f"Bearer {forged}"}), 401
        )
        unsigned = jwt.encode({"sub": "alice", "publish": [">"]}, None, algorithm="none")
        assert_problem(
            c.post("/v1/events", json=event, headers={"Authorization": f"Bearer {unsigned}"}), 401
        )
        bad_sub = jwt.encode({"sub": "a.b", "publish": [">"]}, jwt_secret, algorithm="HS256")
        assert_problem(
            c.post("/v1/events", json=event, headers={"Authorization": f"Bearer {bad_sub}"}), 401
        )
        # header, cookie and query all work
        assert (
            c.post(
                "/v1/events", json=event, headers={"Authorization": f"Bearer {good}"}
            ).status_code
            == 202
        )
        c.cookies.set("notify_token", good)  # a cookie write comes from a trusted origin
        assert (
            c.post("/v1/events", json=event, headers={"Origin": gateway.base_url}).status_code
            == 202
        )
        c.cookies.clear()
        assert c.post("/v1/events", json=event, params={"token": good}).status_code == 202
        # a bad header is not rescued by a good cookie
        c.cookies.set("notify_token", good)
        assert_problem(
            c.post("/v1/events", json=event, headers={"Authorization": "Bearer nonsense"}), 401
        )


def test_authorization(gateway: Gateway, make_token: TokenMaker) -> None:
    bob = make_token(sub="bob", publish=["news.*"], subscribe=["news.>"])
    admin = make_token(sub="root", admin=True)
    with client(gateway, bob) as c:
        ok = c.post("/v1/events", json={"channel": "news.eu", "type": "t", "data": 1})
        assert ok.status_code == 202
        assert_problem(
            c.post("/v1/events", json={"channel": "news.eu.x", "type": "t", "data": 1}),
            403,
            "channel",
        )
        assert_problem(
            c.post(
                "/v1/events/batch",
                json={
                    "events": [
                        {"channel": "news.eu", "type": "t", "data": 1},
                        {"channel": "sports", "type": "t", "data": 1},
                    ]
                },
            ),
            403,
            "events[1].channel",
        )
        assert c.get("/v1/events", params={"channel": "news.*"}).status_code == 200
        assert c.get("/v1/events", params={"channel": "user.bob.>"}).status_code == 200
        assert c.get("/v1/events", params={"channel": "user.bob"}).status_code == 200
        assert_problem(c.get("/v1/events", params={"channel": "user.alice"}), 403)
        assert_problem(c.get("/v1/events", params={"channel": ">"}), 403)
        assert_problem(c.get("/v1/stream", params={"channel": "sports"}), 403)
    with client(gateway, admin) as c:
        assert (
            c.post("/v1/events", json={"channel": "user.bob", "type": "t", "data": 1}).status_code
            == 202
        )
        assert c.get("/v1/events", params={"channel": ">"}).status_code == 200


def test_publish_rate_limit_across_gateways(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    a = gateway_factory(NOTIFY_PUBLISH_RATE="5")
    b = gateway_factory(redis_url=None, NOTIFY_PUBLISH_RATE="5")
    token = make_token(publish=[">"])
    event = {"channel": "r", "type": "t", "data": 1}
    statuses = []
    with client(a, token) as ca, client(b, token) as cb:
        for i in range(14):
            r = (ca if i % 2 else cb).post("/v1/events", json=event)
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1
                assert_problem(r, 429)
    assert statuses.count(202) <= 11  # burst of 10, plus what refilled meanwhile
    assert statuses.count(429) >= 3


def test_a_batch_over_the_burst_passes_on_a_full_bucket_and_is_paid_for(
    gateway_factory: GatewayFactory, make_token: TokenMaker
) -> None:
    """Rate 5/s, burst 10: a batch of 11 could never fit, so it takes a full bucket
    and leaves a debt that later publishes wait out; the average rate still holds."""
    gw = gateway_factory(NOTIFY_PUBLISH_RATE="5")
    token = make_token(publish=[">"], subscribe=[">"])
    batch = {"events": [{"channel": "debt", "type": "t", "data": i} for i in range(11)]}
    with client(gw, token) as c:
        assert c.post("/v1/events/batch", json=batch).status_code == 202
        single = c.post("/v1/events", json={"channel": "debt", "type": "t", "data": 0})
        assert_problem(single, 429)
        again = c.post("/v1/events/batch", json=batch)
        assert_problem(again, 429)
        wait = int(again.headers["Retry-After"])
        assert 2 <= wait <= 3  # 11 tokens owed and 10 to refill, at 5/s
        time.sleep(wait)
        assert c.post("/v1/events/batch", json=batch).status_code == 202
    assert len(history(gw, token, "debt", limit=100)["events"]) == 22


def test_a_wrong_method_names_every_method_the_path_serves(gateway: Gateway, writer: str) -> None:
    with client(gateway, writer) as c:
        events = assert_problem(c.delete("/v1/events"), 405)
        assert events["type"].endswith("/method-not-allowed")
        assert c.delete("/v1/events").headers["allow"] == "GET, POST"
        assert c.put("/v1/events/batch").headers["allow"] == "POST"
        assert c.post("/healthz").headers["allow"] == "GET"


def sample(metrics: str, series: str) -> float:
    """The value of one series on a /metrics page (the series must be there)."""
    found = re.search(rf"^{re.escape(series)} (\S+)$", metrics, re.M)
    assert found is not None, f"{series} not in /metrics"
    return float(found[1])


def test_ops_endpoints(gateway: Gateway, writer: str) -> None:
    with client(gateway, writer) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").json() == {"status": "ready"}
        assert sample(c.get("/metrics").text, "notify_events_published_total") == 0
        with c.stream("GET", "/v1/stream", params={"channel": "m"}) as stream:
            lines = stream.iter_lines()
            assert [next(lines) for _ in range(3)] == ["retry: 3000", "id: 0-0", ""]
            r = c.post("/v1/events", json={"channel": "m", "type": "t", "data": 1})
            assert r.status_code == 202
            assert next(lines) == f"id: {r.json()['id']}"
            text = c.get("/metrics").text  # well before the first keepalive (15 s)
        assert sample(text, "notify_events_published_total") == 1
        assert sample(text, "notify_events_sent_total") == 1
        assert sample(text, 'notify_streams_open{transport="sse"}') == 1
        assert sample(text, "notify_slow_consumer_disconnects_total") == 0
        assert sample(text, "notify_reader_up") == 1
        spec = c.get("/openapi.json").json()
        assert "/v1/events" in spec["paths"] and "/v1/stream" in spec["paths"]
        docs = c.get("/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text
        assert_problem(c.get("/nope"), 404)


def test_no_secret_no_start(gateway_factory: GatewayFactory) -> None:
    from tests.support.procs import Proc

    gw = gateway_factory()
    proc = Proc(
        ["serve", "--port", "1"],
        directory=gw.directory,
        env={"NOTIFY_REDIS_URL": "redis://127.0.0.1:1/0"},
        name="nosecret",
    )
    proc.start()
    assert proc.wait(20) == 2
    proc.kill()
    assert "NOTIFY_JWT_SECRET" in proc.log_text()
    proc2 = Proc(
        ["serve"], directory=gw.directory, env={"NOTIFY_JWT_SECRET": "short"}, name="shortsecret"
    )
    proc2.start()
    assert proc2.wait(20) == 2
    proc2.kill()
    assert "NOTIFY_JWT_SECRET" in proc2.log_text()


def test_concurrent_publishes_are_each_stored_once(gateway: Gateway, writer: str) -> None:
    import asyncio as aio

    async def burst() -> list[str]:
        async with httpx.AsyncClient(
            base_url=gateway.base_url,
            trust_env=False,
            timeout=30,
            headers={"Authorization": f"Bearer {writer}"},
            limits=httpx.Limits(max_connections=50),
        ) as c:
            replies = await aio.gather(
                *(
                    c.post("/v1/events", json={"channel": f"con.{n % 3}", "type": "t", "data": n})
                    for n in range(300)
                )
            )
        assert {r.status_code for r in replies} == {202}
        return [r.json()["id"] for r in replies]

    ids = aio.run(burst())
    assert len(set(ids)) == 300
    stored = history(gateway, writer, "con.*", limit=1000)["events"]
    assert sorted(e["id"] for e in stored) == sorted(ids)
    by_id = {e["id"]: e["data"] for e in stored}
    assert sorted(by_id[i] for i in ids) == list(range(300))
    assert [by_id[i] for i in ids] == list(range(300))  # each answer names its own event
