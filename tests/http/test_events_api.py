"""Every `/v1/events` and `/v1/streams` endpoint, and every error code they can answer."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from tests.provision import provision_sync

PROBLEM_KEYS = {"type", "title", "status", "detail", "error_code", "message"}


def append(client: TestClient, headers: dict[str, str], stream: str = "s", *types: str, **body: Any) -> Any:
    events = [{"type": t, "data": {"i": i}} for i, t in enumerate(types or ("x.done",))]
    return client.post("/v1/events", json={"stream": stream, "events": events, **body}, headers=headers)


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert (body["status"], body["error_code"]) == (status, code)
    return body


def test_append_answers_positions_and_the_position_header(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = append(client, headers, "s", "a.one", "a.two")
    assert response.status_code == 201
    assert response.json() == {"first_position": 1, "last_position": 2, "stream_version": 2}
    assert response.headers["x-spine-position"] == "2"


def test_append_with_client_ids_is_idempotent(client: TestClient, headers: dict[str, str]) -> None:
    body = {"stream": "s", "events": [{"id": "evt-1", "type": "a", "data": {}}]}
    first = client.post("/v1/events", json=body, headers=headers)
    again = client.post("/v1/events", json=body, headers=headers)
    assert first.json() == again.json()
    assert client.get("/v1/events", headers=headers).json()["head"] == 1


def test_events_carry_the_request_context_in_meta(client: TestClient, headers: dict[str, str]) -> None:
    append(client, headers)
    [event] = client.get("/v1/events", headers={**headers, "X-Env": "production"}).json()["events"] or [None]
    assert event is None  # env `production` is normalized to `prod`: another partition
    [event] = client.get("/v1/events", headers=headers).json()["events"]
    assert event["meta"]["tenant_id"] == "t1"
    assert event["meta"]["project_id"] == "p1"
    assert event["meta"]["env"] == "dev"
    assert event["meta"]["request_id"]
    assert set(event) == {"id", "type", "stream", "version", "position", "data", "meta", "recorded_at"}


def test_read_by_cursor_with_filters(client: TestClient, headers: dict[str, str]) -> None:
    append(client, headers, "a", "keep", "drop")
    append(client, headers, "b", "keep")
    page = client.get("/v1/events", params={"after": 1, "limit": 10}, headers=headers).json()
    assert [e["position"] for e in page["events"]] == [2, 3]
    assert (page["next"], page["head"]) == (3, 3)
    by_type = client.get("/v1/events", params={"type": ["keep"]}, headers=headers).json()
    assert [e["position"] for e in by_type["events"]] == [1, 3]
    by_stream = client.get("/v1/events", params={"stream": "a", "type": "drop"}, headers=headers).json()
    assert [e["position"] for e in by_stream["events"]] == [2]


def test_read_one_stream(client: TestClient, headers: dict[str, str]) -> None:
    append(client, headers, "a", "x.1", "x.2")
    append(client, headers, "b", "y")
    body = client.get("/v1/streams/a", params={"after_version": 1}, headers=headers).json()
    assert body["version"] == 2
    assert [(e["version"], e["type"]) for e in body["events"]] == [(2, "x.2")]


def test_unknown_stream_is_404(client: TestClient, headers: dict[str, str]) -> None:
    body = assert_problem(client.get("/v1/streams/nope", headers=headers), 404, "stream.not_found")
    assert body["stream"] == "nope"


@pytest.mark.parametrize("expected", [0, "no_stream", 2])
def test_version_conflict_is_409_with_the_current_version(
    client: TestClient, headers: dict[str, str], expected: Any
) -> None:
    append(client, headers, "s", "a")
    body = assert_problem(
        append(client, headers, "s", "b", expected_version=expected), 409, "spine.version_conflict"
    )
    assert body["current_version"] == 1
    assert body["expected_version"] == expected


def test_a_partial_retry_is_an_idempotency_conflict(client: TestClient, headers: dict[str, str]) -> None:
    client.post("/v1/events", json={"stream": "s", "events": [{"id": "e1", "type": "a"}]}, headers=headers)
    response = client.post(
        "/v1/events",
        json={"stream": "s", "events": [{"id": "e1", "type": "a"}, {"id": "e2", "type": "a"}]},
        headers=headers,
    )
    assert_problem(response, 409, "spine.idempotency_conflict")


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", "5", "99999999999999999999999"])
def test_invalid_cursor_is_400(client: TestClient, headers: dict[str, str], after: str) -> None:
    append(client, headers)
    assert_problem(client.get("/v1/events", params={"after": after}, headers=headers), 400, "cursor.invalid")


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
def test_invalid_body_is_422(client: TestClient, headers: dict[str, str], body: bytes) -> None:
    response = client.post(
        "/v1/events", content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert_problem(response, 422, "request.invalid")
    assert client.get("/v1/events", headers=headers).json()["head"] == 0


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"limit": "x"}])
def test_invalid_query_is_422(client: TestClient, headers: dict[str, str], params: dict[str, Any]) -> None:
    assert_problem(client.get("/v1/events", params=params, headers=headers), 422, "request.invalid")


def test_oversized_body_is_413_and_writes_nothing(client: TestClient, headers: dict[str, str]) -> None:
    events = [{"type": "a", "data": {"blob": "x" * 1000}} for _ in range(100)]
    response = client.post("/v1/events", json={"stream": "s", "events": events}, headers=headers)
    assert_problem(response, 413, "request.too_large")
    assert client.get("/v1/events", headers=headers).json()["head"] == 0


@pytest.mark.parametrize("missing", ["X-Project-Id", "X-Surface-Id"])
def test_missing_context_is_400(client: TestClient, headers: dict[str, str], missing: str) -> None:
    without = {k: v for k, v in headers.items() if k != missing}
    body = assert_problem(client.get("/v1/events", headers=without), 400, "context.missing_field")
    assert body["field"] == missing


def test_an_invalid_identifier_is_400(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/v1/events", headers={**headers, "X-Project-Id": "p1/evil"})
    assert_problem(response, 400, "context.invalid_field")


def test_tenants_never_see_each_other(client: TestClient, headers: dict[str, str]) -> None:
    append(client, headers, "s", "secret")
    theirs = provision_sync(client, tenant="t2")
    other = client.get("/v1/events", headers=theirs).json()
    assert (other["events"], other["head"]) == ([], 0)
    assert_problem(client.get("/v1/streams/s", headers=theirs), 404, "stream.not_found")


def test_unknown_route_and_method_are_problems(client: TestClient, headers: dict[str, str]) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404, "http.not_found")
    assert_problem(client.delete("/v1/events", headers=headers), 405, "http.method_not_allowed")


def test_request_id_is_echoed_or_assigned(client: TestClient, headers: dict[str, str]) -> None:
    assert client.get("/health", headers={"X-Request-Id": "req-42"}).headers["x-request-id"] == "req-42"
    assert client.get("/v1/nothing").headers["x-request-id"]
    append(client, headers)
    response = client.post(
        "/v1/events",
        json={"stream": "s", "events": [{"type": "a"}]},
        headers={**headers, "X-Request-Id": "r-7"},
    )
    assert response.headers["x-request-id"] == "r-7"
    event = client.get("/v1/events", params={"after": 1}, headers=headers).json()["events"][0]
    assert event["meta"]["request_id"] == "r-7"


def test_health_ready_schema_and_metrics(client: TestClient, headers: dict[str, str]) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert {"/v1/events", "/v1/events/stream", "/v1/streams/{stream}"} <= paths.keys()
    before = _sample(client.get("/metrics").text, "spine_appended_events_total")
    append(client, headers, "s", "a", "b")
    append(client, headers, "s", "c", expected_version=0)
    text = client.get("/metrics").text
    assert _sample(text, "spine_appended_events_total") == before + 2
    assert 'spine_appends_total{outcome="spine.version_conflict"} 1.0' in text
    assert "spine_commit_batch_requests_count" in text
    assert "spine_sse_clients 0.0" in text
    assert 'spine_http_request_seconds_count{method="POST",route="/v1/events",status="201"} 1.0' in text


def _sample(text: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


@pytest.mark.parametrize(
    ("stream", "event_type"),
    [
        ("budget:tokens", "x.y"),  # a product route's stream
        ("mine", "budget.usage_recorded"),  # or its event type
        ("memory:u2:k", "memory.set"),
        ("notes", "blackboard.written"),
        ("audit:client", "note.added"),
        ("session:u1:s", "session.message_added"),
    ],
)
def test_streams_and_types_of_product_routes_are_refused(
    client: TestClient, headers: dict[str, str], stream: str, event_type: str
) -> None:
    """Written around their routes, such events would skip their rules (a budget's hard limit,
    whose memory a key is) or stop their views: they are refused, and nothing is appended."""
    body = {"stream": stream, "events": [{"type": "ok.type"}, {"type": event_type, "data": {"x": 1}}]}
    assert_problem(client.post("/v1/events", json=body, headers=headers), 422, "request.invalid")
    assert client.get("/v1/events", headers=headers).json()["events"] == []
