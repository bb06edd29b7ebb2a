"""`POST /v1/projections/{name}/snapshots` and rebuilds from a snapshot, on every view backend: a
snapshot taken before retention keeps what the removed events did through a rebuild, while
`?from=start` rebuilds a view of the survivors."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from tests.http.test_cloud_routes import cosmos_config, dynamodb_config, firestore_config
from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync


def sqlite_config(_: pytest.MonkeyPatch) -> dict[str, Any]:
    return {"path": "snapshot-backend.db"}  # inside the data dir


def lab(_: pytest.MonkeyPatch) -> None:
    return None  # no route: the embedded lab store


def say(client: TestClient, headers: dict[str, str], session: str, count: int) -> int:
    position = 0
    for n in range(count):
        body = {"role": "user", "content": f"{session} {n}"}
        answer = client.post(f"/v1/sessions/{session}/messages", json=body, headers=headers)
        assert answer.status_code == 201, answer.text
        position = answer.json()["position"]
    return position


def conversation(client: TestClient, headers: dict[str, str], position: int) -> dict[str, list[str]]:
    waited = {**headers, "X-Spine-Min-Position": str(position)}
    read = {}
    for session in ("s1", "s2"):
        answer = client.get(f"/v1/sessions/{session}", headers=waited)
        assert answer.status_code == 200, answer.text
        read[session] = [m["content"] for m in answer.json()["messages"]]
    return read


def rebuild(client: TestClient, admin: dict[str, str], query: str = "") -> dict[str, Any]:
    answer = client.post(f"/v1/projections/sessions/rebuild?wait=true{query}", headers=admin)
    assert answer.status_code == 202, answer.text
    [view] = answer.json()["projections"]
    assert view["rebuild"]["state"] == "swapped"
    return dict(view)


@pytest.mark.parametrize(
    ("backend", "config_of"),
    [
        ("lab", lab),
        ("sqlite", sqlite_config),
        ("dynamodb", dynamodb_config),
        ("firestore", firestore_config),
        ("cosmos", cosmos_config),
    ],
)
def test_a_snapshot_keeps_what_retention_removed_through_a_rebuild(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, backend: str, config_of: Any
) -> None:
    config = config_of(monkeypatch)
    settings = msgspec.structs.replace(settings, retention_interval_seconds=0)  # runs only when asked
    with TestClient(create_app(settings)) as client:
        headers = provision_sync(client, user="boss", role="admin")
        admin = admin_headers_sync(client)
        if config is not None:
            for kind in ("event_spine", "memory_store"):  # the sessions view's kind
                route = {"resource_kind": kind, "tenant_id": "t1", "env": "dev", "project_id": "p1",
                         "backend_type": backend, "config": config}  # fmt: skip
                assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
        say(client, headers, "s1", 4)
        position = say(client, headers, "s2", 3)
        before = conversation(client, headers, position)
        assert before == {"s1": [f"s1 {n}" for n in range(4)], "s2": [f"s2 {n}" for n in range(3)]}

        taken = client.post("/v1/projections/sessions/snapshots?wait=true", headers=admin)
        assert taken.status_code == 202, taken.text
        [snapshot] = taken.json()["snapshots"]
        assert (snapshot["state"], snapshot["project_id"], snapshot["position"], snapshot["documents"]) == (
            "taken", "p1", position, 7)  # fmt: skip
        [view] = client.get("/v1/projections?name=sessions", headers=admin).json()["projections"]
        assert view["snapshot"] == {k: snapshot[k] for k in ("position", "taken_at", "documents")}

        rules = {"rules": [{"stream_prefix": "session:", "keep_last": 1}]}
        assert client.put("/v1/retention", json=rules, headers=headers).status_code == 200
        run = client.post("/v1/retention/runs", json={}, headers=headers).json()
        assert run["removed"] == 5
        more = say(client, headers, "s2", 1)  # after the snapshot: replayed on top of it
        after = {"s1": before["s1"], "s2": [*before["s2"], "s2 0"]}

        rebuilt = rebuild(client, admin)
        assert (rebuilt["rebuild"]["from"], rebuilt["rebuild"]["snapshot_position"]) == ("snapshot", position)
        assert conversation(client, headers, more) == after  # what the removed events did is kept

        survivors = rebuild(client, admin, "&from=start")
        assert (survivors["rebuild"]["from"], survivors["rebuild"]["snapshot_position"]) == ("start", None)
        assert conversation(client, headers, more) == {"s1": ["s1 3"], "s2": ["s2 2", "s2 0"]}


def test_snapshots_are_for_operators_and_name_known_views(
    client: TestClient, headers: dict[str, str]
) -> None:
    admin = admin_headers_sync(client)
    assert_problem(client.post("/v1/projections/sessions/snapshots", headers=headers), 403, "auth.forbidden")
    assert_problem(client.post("/v1/projections/nope/snapshots", headers=admin), 404, "projection.not_found")
    other = provision_sync(client, tenant="t2", user="boss", role="admin")
    answer = client.post("/v1/projections/memory/snapshots", json={"tenant_id": "t1"}, headers=other)
    assert_problem(answer, 403, "auth.forbidden")
    body = {"tenant_id": "t1", "project_id": "p1", "env": "dev"}  # a partition no request has touched
    taken = client.post("/v1/projections/memory/snapshots?wait=true", json=body, headers=admin)
    assert taken.status_code == 202, taken.text
    [snapshot] = taken.json()["snapshots"]
    assert (snapshot["state"], snapshot["position"], snapshot["documents"]) == ("taken", 0, 0)
    answer = client.post("/v1/projections/memory/rebuild?from=nowhere", headers=admin)
    assert_problem(answer, 422, "request.invalid")
