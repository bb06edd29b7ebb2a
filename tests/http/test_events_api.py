"""Every `/v1/events` and `/v1/streams` endpoint, and every error code they can answer."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from tests.http.conftest import HEADERS

PROBLEM_KEYS = {"type", "title", "status", "detail", "error_code", "message"}


def append(client: TestClient, stream: str = "s", *types: str, **body: Any) -> Any:
    events = [{"type": t, "data": {"i": i}} for i, t in enumerate(types or ("x.done",))]
    return client.post("/v1/events", json={"stream": stream, "events": events, **body}, headers=HEADERS)


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert (body["status"], body["error_code"]) == (status, code)
    return body


def test_append_answers_positions_and_the_position_header(client: TestClient) -> None:
    response = append(client, "s", "a.one", "a.two")
    assert response.status_code == 201
    assert response.json() == {"first_position": 1, "last_position": 2, "stream_version": 2}
    assert response.headers["x-spine-position"] == "2"


def test_append_with_client_ids_is_idempotent(client: TestClient) -> None:
    body = {"stream": "s", "events": [{"id": "evt-1", "type": "a", "data": {}}]}
    first = client.post("/v1/events", json=body, headers=HEADERS)
    again = client.post("/v1/events", json=body, headers=HEADERS)
    assert first.json() == again.json()
    assert client.get("/v1/events", headers=HEADERS).json()["head"] == 1


def test_events_carry_the_request_context_in_meta(client: TestClient) -> None:
    append(client)
    [event] = client.get("/v1/events", headers={**HEADERS, "X-Env": "production"}).json()["events"] or [None]
    assert event is None  # env `production` is normalized to `prod`: another partition
    [event] = client.get("/v1/events", headers=HEADERS).json()["events"]
    assert event["meta"]["tenant_id"] == "t1"
    assert event["meta"]["project_id"] == "p1"
    assert event["meta"]["env"] == "dev"
    assert event["meta"]["request_id"]
    assert set(event) == {"id", "type", "stream", "version", "position", "data", "meta", "recorded_at"}


def test_read_by_cursor_with_filters(client: TestClient) -> None:
    append(client, "a", "keep", "drop")
    append(client, "b", "keep")
    page = client.get("/v1/events", params={"after": 1, "limit": 10}, headers=HEADERS).json()
    assert [e["position"] for e in page["events"]] == [2, 3]
    assert (page["next"], page["head"]) == (3, 3)
    by_type = client.get("/v1/events", params={"type": ["keep"]}, headers=HEADERS).json()
    assert [e["position"] for e in by_type["events"]] == [1, 3]
    by_stream = client.get("/v1/events", params={"stream": "a", "type": "drop"}, headers=HEADERS).json()
    assert [e["position"] for e in by_stream["events"]] == [2]


def test_read_one_stream(client: TestClient) -> None:
    append(client, "a", "x.1", "x.2")
    append(client, "b", "y")
    body = client.get("/v1/streams/a", params={"after_version": 1}, headers=HEADERS).json()
    assert body["version"] == 2
    assert [(e["version"], e["type"]) for e in body["events"]] == [(2, "x.2")]


def test_unknown_stream_is_404(client: TestClient) -> None:
    body = assert_problem(client.get("/v1/streams/nope", headers=HEADERS), 404, "stream.not_found")
    assert body["stream"] == "nope"


@pytest.mark.parametrize("expected", [0, "no_stream", 2])
def test_version_conflict_is_409_with_the_current_version(client: TestClient, expected: Any) -> None:
    append(client, "s", "a")
    body = assert_problem(append(client, "s", "b", expected_version=expected), 409, "spine.version_conflict")
    assert body["current_version"] == 1
    assert body["expected_version"] == expected


def test_a_partial_retry_is_an_idempotency_conflict(client: TestClient) -> None:
    client.post("/v1/events", json={"stream": "s", "events": [{"id": "e1", "type": "a"}]}, headers=HEADERS)
    response = client.post(
        "/v1/events",
        json={"stream": "s", "events": [{"id": "e1", "type": "a"}, {"id": "e2", "type": "a"}]},
        headers=HEADERS,
    )
    assert_problem(response, 409, "spine.idempotency_conflict")


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", "5", "99999999999999999999999"])
def test_invalid_cursor_is_400(client: TestClient, after: str) -> None:
    append(client)
    assert_problem(client.get("/v1/events", params={"after": after}, headers=HEADERS), 400, "cursor.invalid")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"events": [{"type": "a"}]}',
        b'{"stream": "s", "events": []}',
        b'{"stream": "s", "events": [{"data": {}}]}',
        b'{"stream": "has space", "events": [{"type": "a"}]}',
        b'{"stream": "s", "events": [{"type": "a", "data": [1]}]}',
        b'{"stream": "s", "expected_version": -1, "events": [{"type": "a"}]}',
        b'{"stream": "s", "expected_version": "sometimes", "events": [{"type": "a"}]}',
        b'{"stream": "s", "events": [{"type": "a", "id": "d"}, {"type": "b", "id": "d"}]}',
    ],
    ids=[
        "malformed",
        "no-stream",
        "no-events",
        "no-type",
        "bad-stream",
        "data-not-object",
        "negative-version",
        "unknown-version",
        "duplicate-ids",
    ],
)
def test_invalid_body_is_422(client: TestClient, body: bytes) -> None:
    response = client.post(
        "/v1/events", content=body, headers={**HEADERS, "Content-Type": "application/json"}
    )
    assert_problem(response, 422, "request.invalid")
    assert client.get("/v1/events", headers=HEADERS).json()["head"] == 0


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"limit": "x"}])
def test_invalid_query_is_422(client: TestClient, params: dict[str, Any]) -> None:
    assert_problem(client.get("/v1/events", params=params, headers=HEADERS), 422, "request.invalid")


def test_oversized_body_is_413_and_writes_nothing(client: TestClient) -> None:
    events = [{"type": "a", "data": {"blob": "x" * 1000}} for _ in range(100)]
    response = client.post("/v1/events", json={"stream": "s", "events": events}, headers=HEADERS)
    assert_problem(response, 413, "request.too_large")
    assert client.get("/v1/events", headers=HEADERS).json()["head"] == 0


@pytest.mark.parametrize("missing", ["X-Tenant-Id", "X-Project-Id"])
def test_missing_context_is_400(client: TestClient, missing: str) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != missing}
    body = assert_problem(client.get("/v1/events", headers=headers), 400, "context.missing_field")
    assert body["field"] == missing


def test_an_invalid_identifier_is_400(client: TestClient) -> None:
    response = client.get("/v1/events", headers={**HEADERS, "X-Tenant-Id": "t1/evil"})
    assert_problem(response, 400, "context.invalid_field")


def test_tenants_never_see_each_other(client: TestClient) -> None:
    append(client, "s", "secret")
    other = client.get("/v1/events", headers={**HEADERS, "X-Tenant-Id": "t2"}).json()
    assert (other["events"], other["head"]) == ([], 0)
    assert_problem(
        client.get("/v1/streams/s", headers={**HEADERS, "X-Tenant-Id": "t2"}), 404, "stream.not_found"
    )


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404, "http.not_found")
    assert_problem(client.delete("/v1/events", headers=HEADERS), 405, "http.method_not_allowed")


def test_request_id_is_echoed_or_assigned(client: TestClient) -> None:
    assert client.get("/health", headers={"X-Request-Id": "req-42"}).headers["x-request-id"] == "req-42"
    assert client.get("/v1/nothing").headers["x-request-id"]
    append(client)
    response = client.post(
        "/v1/events",
        json={"stream": "s", "events": [{"type": "a"}]},
        headers={**HEADERS, "X-Request-Id": "r-7"},
    )
    assert response.headers["x-request-id"] == "r-7"
    event = client.get("/v1/events", params={"after": 1}, headers=HEADERS).json()["events"][0]
    assert event["meta"]["request_id"] == "r-7"


def test_health_ready_schema_and_metrics(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert {"/v1/events", "/v1/events/stream", "/v1/streams/{stream}"} <= paths.keys()
    append(client, "s", "a", "b")
    append(client, "s", "c", expected_version=0)
    text = client.get("/metrics").text
    assert "spine_appended_events_total 2.0" in text
    assert 'spine_appends_total{outcome="spine.version_conflict"} 1.0' in text
    assert "spine_commit_batch_requests_count" in text
    assert "spine_sse_clients 0.0" in text
    assert 'spine_http_request_seconds_count{method="POST",route="/v1/events",status="201"} 1.0' in text
