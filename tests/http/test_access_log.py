"""The access log: one `spine.access` line per request, whatever answered it, and never a credential."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import httpx
import pytest
from litestar.testing import TestClient

from app.logs import JsonFormatter
from tests.http.conftest import LiveServer, sse_frames
from tests.http.test_events_api import assert_problem
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision, provision_sync

FIELDS = {"method", "route", "status", "latency_ms", "tenant_id", "user_id", "request_id", "error_code"}
APPEND = {"stream": "s", "events": [{"type": "x.done"}]}


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="spine.access")
    return caplog


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "spine.access"]


def only_line(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    [record] = lines(caplog)
    assert record.levelno == (logging.ERROR if record.__dict__["status"] >= 500 else logging.INFO)
    fields = {name: record.__dict__[name] for name in FIELDS}
    assert isinstance(fields["latency_ms"], float)
    assert fields["latency_ms"] >= 0
    return fields


REQUESTS = [
    pytest.param("GET", "/v1/events", None, True, 200, "/v1/events", None, id="200"),
    pytest.param("GET", "/v1/events", None, False, 401, "/v1/events", "auth.missing_token", id="401"),
    pytest.param("POST", "/v1/events", {"stream": "s"}, True, 422, "/v1/events", "request.invalid", id="422"),
    pytest.param("GET", "/v1/nothing/here", None, True, 404, "unmatched", "http.not_found", id="404-path"),
    pytest.param("PATCH", "/v1/memory/k", None, True, 405, "unmatched", "http.method_not_allowed", id="405"),
    pytest.param(
        "GET", "/v1/runs/r1/blackboard/k", None, True, 404, "/v1/runs/{run_id}/blackboard/{key}",
        "blackboard.not_found", id="404-entry",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "authorized", "status", "route", "code"), REQUESTS)
def test_one_line_per_request_with_its_route_status_caller_and_error_code(
    client: TestClient,
    headers: dict[str, str],
    access: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: Any,
    authorized: bool,
    status: int,
    route: str,
    code: str | None,
) -> None:
    sent = {**(headers if authorized else {}), "X-Request-Id": "logged-1"}
    access.clear()
    answer = client.request(method, path, json=body, headers=sent)
    assert answer.status_code == status, answer.text
    caller = ("t1", "u1") if authorized and route != "unmatched" else (None, None)
    assert only_line(access) | {"latency_ms": 0.0} == {
        "method": method,
        "route": route,
        "status": status,
        "latency_ms": 0.0,
        "tenant_id": caller[0],
        "user_id": caller[1],
        "request_id": "logged-1",
        "error_code": code,
    }


def test_a_body_over_the_limit_is_logged_as_413(
    client: TestClient, headers: dict[str, str], access: pytest.LogCaptureFixture
) -> None:
    access.clear()
    big = {"stream": "s", "events": [{"type": "x.done", "data": {"blob": "x" * 70_000}}]}
    assert_problem(client.post("/v1/events", json=big, headers=headers), 413, "request.too_large")
    line = only_line(access)
    assert (line["method"], line["route"], line["status"]) == ("POST", "/v1/events", 413)
    assert line["error_code"] == "request.too_large"


def test_a_5xx_is_logged_at_error(client: TestClient, access: pytest.LogCaptureFixture) -> None:
    saas = provision_sync(client, tenant="t9", mode="saas")  # no routes written: 503 missing_route
    access.clear()
    answer = client.post("/v1/events", json=APPEND, headers=saas)
    assert answer.status_code == 503, answer.text
    [record] = lines(access)
    assert record.levelno == logging.ERROR
    line = only_line(access)
    assert (line["status"], line["tenant_id"], line["error_code"]) == (503, "t9", "event_spine.missing_route")


def test_neither_the_path_nor_the_query_string_is_logged(
    client: TestClient, headers: dict[str, str], access: pytest.LogCaptureFixture
) -> None:
    access.clear()
    client.put("/v1/memory/users-secret-key", json={"value": 1}, headers=headers)
    client.get("/v1/events", params={"ticket": "a-ticket-value"}, headers=headers)
    assert [line.__dict__["route"] for line in lines(access)] == ["/v1/memory/{key}", "/v1/events"]
    logged = " ".join(JsonFormatter().format(record) for record in lines(access))
    assert "users-secret-key" not in logged
    assert "a-ticket-value" not in logged


def test_no_log_record_ever_holds_a_token_or_the_bootstrap_key(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = admin_headers_sync(client)
    member = provision_sync(client)
    sent = [
        client.get("/v1/events", headers=member),
        client.post("/v1/events", json=APPEND, headers=member),
        client.post("/v1/events", json=APPEND, headers={**member, "X-Tenant-Id": "t2"}),  # audited override
        client.get("/v1/events", headers={**member, "Authorization": member["Authorization"] + "x"}),
        client.get("/v1/events", params={"ticket": member["Authorization"]}, headers=member),  # 2 credentials
        client.get("/v1/tenants/t1", headers=admin),
        client.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": BOOTSTRAP_KEY + "-wrong"}),
    ]
    assert [answer.status_code for answer in sent] == [200, 201, 403, 401, 401, 200, 403]
    secrets = {
        BOOTSTRAP_KEY,
        admin["Authorization"].removeprefix("Bearer "),
        member["Authorization"].removeprefix("Bearer "),
    }
    formatter = JsonFormatter()
    served = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # not the client's
    for record in served:
        text = formatter.format(record) + repr(record.__dict__)
        assert not [secret for secret in secrets if secret in text], record.getMessage()
    # bootstrap twice, 5 provisioning steps, the token, the requests above
    assert len(lines(caplog)) == 2 + 5 + 1 + len(sent)


async def test_an_sse_stream_is_logged_when_it_ends_with_its_duration(
    live_server: LiveServer, access: pytest.LogCaptureFixture
) -> None:
    def routed(route: str) -> list[logging.LogRecord]:
        return [record for record in lines(access) if record.__dict__["route"] == route]

    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        member = await provision(http)
        with anyio.fail_after(10):
            async with http.stream("GET", "/v1/events/stream", headers=member) as response:
                frames = sse_frames(response)  # kept: dropping it would close the stream now
                assert "retry" in await anext(frames)
                await http.get("/health")  # logged while the stream is still open
                while not routed("/health"):  # noqa: ASYNC110  # logged after its last byte
                    await anyio.sleep(0.02)
                assert routed("/v1/events/stream") == []
            while not routed("/v1/events/stream"):  # noqa: ASYNC110  # once the server sees the client go
                await anyio.sleep(0.02)
    [record] = routed("/v1/events/stream")
    assert record.levelno == logging.INFO
    assert (record.__dict__["status"], record.__dict__["tenant_id"]) == (200, "t1")
    # the stream's whole life: it was open while /health was answered and logged
    [health] = routed("/health")
    assert record.__dict__["latency_ms"] > health.__dict__["latency_ms"]
