"""Retention on every backend a route may name: the partition's log and the budget view routed to
sqlite, DynamoDB Local, the Firestore emulator or the Cosmos DB peer. A run removes the same
events, readers are told the same, budget totals survive a rebuild, and another start agrees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from tests.http.conftest import Clock
from tests.http.test_cloud_routes import cosmos_config, dynamodb_config, firestore_config
from tests.provision import admin_headers_sync, provision_sync


def sqlite_config(_: pytest.MonkeyPatch) -> dict[str, Any]:
    return {"path": "retention-backend.db"}  # inside the data dir


def reads(client: TestClient, headers: dict[str, str], clock: Clock) -> list[Any]:
    """Every read retention touches: pages from before and after the mark, a stream, the budget of
    both days (read-your-writes at the log's head)."""
    head = client.get("/v1/events?limit=1", headers=headers).json()["head"]
    waited = {**headers, "X-Spine-Min-Position": str(head)}
    answers = []
    for path in ("/v1/events?limit=1000", "/v1/events?after=2&limit=2", "/v1/streams/chat:a", "/v1/budget"):
        answer = client.get(path, headers=waited)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        for event in body.get("events", []):
            event.pop("recorded_at")
        answers.append((path, answer.headers.get("x-spine-truncated"), body))
    clock.now -= timedelta(days=1)
    answers.append(("yesterday", None, client.get("/v1/budget", headers=waited).json()))
    clock.now += timedelta(days=1)
    return answers


@pytest.mark.parametrize(
    ("backend", "config_of"),
    [
        ("sqlite", sqlite_config),
        ("dynamodb", dynamodb_config),
        ("firestore", firestore_config),
        ("cosmos", cosmos_config),
    ],
)
def test_a_run_removes_the_same_on_every_backend(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, backend: str, config_of: Any
) -> None:
    config = config_of(monkeypatch)
    clock = Clock(datetime(2026, 11, 10, 12, tzinfo=UTC))
    settings = msgspec.structs.replace(settings, retention_interval_seconds=0)  # runs only when asked
    with TestClient(create_app(settings, clock=clock)) as client:
        headers = provision_sync(client, user="boss", role="admin")
        admin = admin_headers_sync(client)
        for kind in ("event_spine", "memory_store"):  # the budget view's kind
            route = {"resource_kind": kind, "tenant_id": "t1", "env": "dev", "project_id": "p1",
                     "backend_type": backend, "config": config}  # fmt: skip
            assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
        for stream in ("chat:a", "chat:a", "chat:b", "chat:a", "note:x", "chat:a"):
            body = {"stream": stream, "events": [{"type": "said", "data": {"s": stream}}]}
            assert client.post("/v1/events", json=body, headers=headers).status_code == 201
        for days, amount in ((0, 10), (0, 20), (1, 5)):
            clock.now += timedelta(days=days)
            usage = {"amount": amount, "unit": "tokens"}
            assert client.post("/v1/budget/usage", json=usage, headers=headers).status_code == 201
        before = reads(client, headers, clock)
        rules = {
            "rules": [
                {"stream_prefix": "chat:", "keep_last": 1},
                {"stream_prefix": "budget:", "keep_last": 1},
            ]
        }
        assert client.put("/v1/retention", json=rules, headers=headers).status_code == 200
        run = client.post("/v1/retention/runs", json={}, headers=headers).json()
        assert (run["removed"], run["by_stream"]) == (5, {"chat:a": 3, "budget:tokens": 2})
        after = reads(client, headers, clock)
        assert [e["position"] for e in after[0][2]["events"]] == [3, 5, 6, 9, 10]  # 10: totals kept
        assert [(path, told) for path, told, _ in after] == [
            ("/v1/events?limit=1000", "8"),
            ("/v1/events?after=2&limit=2", "8"),
            ("/v1/streams/chat:a", "8"),
            ("/v1/budget", None),
            ("yesterday", None),
        ]
        assert after[3:] == before[3:]  # the budget of both days, as before
        rebuilt = client.post("/v1/projections/budget/rebuild?wait=true", headers=admin)
        assert rebuilt.status_code == 202, rebuilt.text
        assert reads(client, headers, clock) == after
        again = client.post("/v1/retention/runs", json={}, headers=headers).json()
        assert again["by_stream"] == {"budget:tokens": 1}  # the usage the summary now follows: no summary
        assert client.post("/v1/retention/runs", json={}, headers=headers).json()["planned"] == 0  # at rest
        after = reads(client, headers, clock)
        assert after[3:] == before[3:]
    with TestClient(create_app(settings, clock=clock)) as client:  # another start: the mark is data
        assert reads(client, headers, clock) == after
