"""Problem types resolve to pages served by the gateway; validation names every field."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from notify.errors import CATALOGUE
from tests.support.factories import GatewayFactory, TokenMaker
from tests.support.procs import Gateway


def test_every_problem_type_resolves(gateway: Gateway, make_token: TokenMaker) -> None:
    reader = make_token("bob", subscribe=["news.>"])
    auth = {"Authorization": f"Bearer {reader}"}
    with httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=10) as c:
        answers = [
            c.post("/v1/events", json={}),  # 401
            c.post("/v1/events", json={"channel": "x", "type": "t", "data": 1}, headers=auth),
            c.post("/v1/events", content=b"{", headers=auth),  # 422
            c.get("/v1/events", params={"channel": "news.x", "after": "nope"}, headers=auth),
            c.get("/v1/subscriptions/sub_missing", headers=auth),  # 404
            c.put("/v1/events", headers=auth),  # 405
        ]
        statuses = {r.status_code for r in answers}
        assert statuses == {401, 403, 422, 400, 404, 405}, [r.text for r in answers]
        for r in answers:
            problem = r.json()
            page = c.get(urlsplit(problem["type"]).path)
            assert page.status_code == 200, problem
            assert page.headers["content-type"].startswith("text/html")
            assert page.headers["content-security-policy"] == "default-src 'none'"
            code = problem["type"].rsplit("/", 1)[1]
            assert f"<code>{code}</code>" in page.text
            assert problem["title"].lower() in page.text.lower()
        for code, entry in CATALOGUE.items():
            as_json = c.get(f"/problems/{code}", headers={"Accept": "application/json"}).json()
            assert as_json == {
                "code": code,
                "status": entry.status,
                "title": entry.title,
                "help": entry.help,
            }
        index = c.get("/problems")
        assert index.status_code == 200 and all(f"/problems/{k}" in index.text for k in CATALOGUE)
        missing = c.get("/problems/<script>")
        assert missing.status_code == 404 and "<script>" not in missing.headers["content-type"]
        assert missing.json()["type"].endswith("/problems/not-found")


def test_the_problem_base_is_configurable(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(NOTIFY_PROBLEM_BASE_URL="https://docs.example/errors")
    with httpx.Client(base_url=gw.base_url, trust_env=False, timeout=10) as c:
        assert c.post("/v1/events", json={}).json()["type"] == (
            "https://docs.example/errors/unauthenticated"
        )
        # the answers the server's protocol writes itself, too (431 here)
        many = {f"x-{n}": "v" for n in range(200)}
        too_large = c.get("/healthz", headers=many)
        assert too_large.status_code == 431
        assert too_large.json()["type"] == "https://docs.example/errors/headers-too-large"


def test_a_validation_failure_names_every_bad_field(
    gateway: Gateway, make_token: TokenMaker
) -> None:
    auth = {"Authorization": f"Bearer {make_token(publish=['>'], subscribe=['>'])}"}
    with httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=10) as c:
        r = c.post("/v1/events", json={"channel": "a b", "type": "", "extra": 1}, headers=auth)
        body = r.json()
        assert r.status_code == 422 and body["field"] == "extra"
        assert [e["field"] for e in body["errors"]] == ["extra", "channel", "type", "data"]
        assert all(e["detail"] for e in body["errors"])
        batch = {
            "events": [
                {"channel": "ok", "type": "t", "data": 1},
                {"channel": "", "type": "t", "data": 1},
                {"channel": "ok", "type": "t t"},
            ]
        }
        body = c.post("/v1/events/batch", json=batch, headers=auth).json()
        assert body["field"] == "events[1].channel"
        assert [e["field"] for e in body["errors"]] == [
            "events[1].channel",
            "events[2].type",
            "events[2].data",
        ]
        r = c.post(
            "/v1/subscriptions",
            json={"channel": "a..b", "sink": {"kind": "email", "to": "not an address"}},
            headers=auth,
        )
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["errors"]] == ["channel", "sink.to"]
        assert c.get("/v1/events", params={"channel": ">"}, headers=auth).json()["events"] == []


# the fast path's publish (limit: NOTIFY_MAX_EVENT_BYTES + 1 KiB) and a FastAPI route's
# (subscriptions: 64 KiB); both read bodies with one function
BODY_LIMITS = {"/v1/events": 65536 + 1024, "/v1/subscriptions": 64 * 1024}


def raw_post(gw: Gateway, path: str, head: str) -> tuple[int, dict[str, object]]:
    """POST a head alone (its body never sent): the status and problem of the answer."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nhost: gateway\r\n{head}\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)  # a timeout here: the gateway waits for the body
            assert chunk, data
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


@pytest.mark.parametrize("path", BODY_LIMITS)
def test_a_body_over_the_limit_is_one_answer_on_fast_path_and_routes(
    gateway: Gateway, make_token: TokenMaker, path: str
) -> None:
    """413 ``too-large`` naming the limit: before a byte of the body is read when the
    Content-Length declares it, and as soon as it is over when the body is chunked."""
    token = make_token("bob", publish=[">"], subscribe=[">"])
    limit = BODY_LIMITS[path]
    head = f"authorization: Bearer {token}\r\ncontent-type: application/json\r\n"
    status, declared = raw_post(gateway, path, head + f"content-length: {limit + 1}\r\n")
    assert status == 413, declared
    assert declared["type"].endswith("/too-large")
    assert declared["detail"] == f"body is over the limit of {limit} bytes"

    def chunks() -> Iterator[bytes]:
        yield b'{"data": "'
        yield b"x" * limit
        yield b'"}'

    with httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=10) as c:
        r = c.post(path, content=chunks(), headers={"authorization": f"Bearer {token}"})
    assert "content-length" not in r.request.headers
    assert r.status_code == 413 and r.json() == declared
