"""The flags contract on every backend: a project whose log and flags view are routed to sqlite,
DynamoDB, Firestore or Cosmos (their real peers) answers one sequence of operations the same,
before and after a rebuild of its view."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from tests.http.test_cloud_routes import cosmos_config, dynamodb_config, firestore_config
from tests.provision import admin_headers_sync, provision_sync

URL = "/v1/flags"


def sqlite_config(_: pytest.MonkeyPatch) -> dict[str, Any]:
    return {"path": "flags-contract.db"}


def firestore_cold_config(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # the emulator's first transactions after it starts take seconds (the JVM warming up): more
    # than the default request timeout when this test is the session's first to use it
    return {**firestore_config(monkeypatch), "request_timeout_seconds": 60}


def put(client: TestClient, headers: dict[str, str], key: str, **fields: Any) -> Any:
    body = {"type": "string", "default": "d", "reason": f"set {key}", **fields}
    return client.put(f"{URL}/{key}", json=body, headers=headers)


def answers(client: TestClient, headers: dict[str, str], position: int) -> dict[str, Any]:
    """Every read of the sequence, each answer's status and body without its wall-clock times."""
    waited = {**headers, "X-Spine-Min-Position": str(position)}
    reads = {
        "list": (URL, {}),
        "a": (f"{URL}/a", {}),
        "b": (f"{URL}/b", {}),
        "a/history": (f"{URL}/a/history", {}),
        "b/history": (f"{URL}/b/history", {}),
        "evaluate": (f"{URL}/evaluate", {"keys": "a,b,c"}),
        "evaluate-all": (f"{URL}/evaluate", {}),
    }
    found: dict[str, Any] = {}
    for name, (path, params) in reads.items():
        answer = client.get(path, params=params, headers=waited)
        found[name] = (answer.status_code, _timeless(answer.json()))
    return found


def _timeless(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k != "changed_at"}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


A1 = {"type": "string", "default": "d", "enabled": True, "rules": [{"users": ["u1"], "value": "mine"}],
      "description": None}  # fmt: skip
A2 = {**A1, "default": "d2", "rules": [{"apps": ["app9"], "value": "x"}, {"rollout": 100.0, "value": "all"}]}
EXPECTED = {
    "list": (200, {"flags": [{"key": "a", "version": 2, "position": 3, "changed_by": "u1", "reason": "set a",
                              **A2}], "next": None}),
    "a": (200, {"key": "a", "version": 2, "position": 3, "changed_by": "u1", "reason": "set a", **A2}),
    "b": (404, {"type": "urn:spine:error:feature_flags.not_found", "title": "Not Found", "status": 404,
                "detail": "feature flag 'b' was deleted at version 2",
                "error_code": "feature_flags.not_found", "message": "feature flag 'b' was deleted at version 2",
                "key": "b", "deleted": True, "version": 2}),
    "a/history": (200, {"key": "a", "next": None, "versions": [
        {"key": "a", "version": 1, "position": 1, "changed_by": "u1", "reason": "set a", "change": "changed",
         "flag": A1},
        {"key": "a", "version": 2, "position": 3, "changed_by": "u1", "reason": "set a", "change": "changed",
         "flag": A2},
    ]}),
    "b/history": (200, {"key": "b", "next": None, "versions": [
        {"key": "b", "version": 1, "position": 2, "changed_by": "u1", "reason": "set b", "change": "changed",
         "flag": {"type": "string", "default": "d", "enabled": False, "rules": [], "description": "off"}},
        {"key": "b", "version": 2, "position": 4, "changed_by": "u1", "reason": "retired", "change": "deleted",
         "flag": None},
    ]}),
    "evaluate": (200, {"position": 4, "next": None, "flags": {
        "a": {"value": "all", "reason": "rule", "rule": 1, "version": 2},
        "b": {"value": None, "reason": "not_found"},
        "c": {"value": None, "reason": "not_found"},
    }}),
    "evaluate-all": (200, {"position": 4, "next": None, "flags": {
        "a": {"value": "all", "reason": "rule", "rule": 1, "version": 2},
    }}),
}  # fmt: skip


@pytest.mark.parametrize(
    ("backend", "config_of"),
    [
        ("sqlite", sqlite_config),
        ("dynamodb", dynamodb_config),
        ("firestore", firestore_cold_config),
        ("cosmos", cosmos_config),
    ],
)
def test_every_backend_answers_the_flag_sequence_the_same_and_rebuilds_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, backend: str, config_of: Any
) -> None:
    config = config_of(monkeypatch)
    with TestClient(create_app(settings)) as client:
        headers = provision_sync(client)
        admin = admin_headers_sync(client)
        for kind in ("event_spine", "feature_flags"):
            route = {"resource_kind": kind, "tenant_id": "t1", "env": "dev", "project_id": "p1",
                     "backend_type": backend, "config": config}  # fmt: skip
            assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
        first = put(client, headers, "a", rules=[{"users": ["u1"], "value": "mine"}])
        assert first.status_code == 200, first.text
        assert "x-spine-warning" not in first.headers  # routed: no lab fallback
        assert put(client, headers, "b", enabled=False, description="off").json()["version"] == 1
        a2 = {"default": "d2", "rules": [{"apps": ["app9"], "value": "x"}, {"rollout": 100, "value": "all"}]}
        assert put(client, headers, "a", expected_version=1, **a2).json()["version"] == 2
        stale = put(client, headers, "a", expected_version=1)
        assert (stale.status_code, stale.json()["error_code"]) == (409, "feature_flags.version_conflict")
        gone = client.delete(f"{URL}/b", params={"reason": "retired"}, headers=headers)
        assert (gone.status_code, gone.json()["position"]) == (200, 4)
        assert answers(client, headers, 4) == EXPECTED
        rebuilt = client.post("/v1/projections/flags/rebuild?wait=true", headers=admin)
        assert rebuilt.status_code == 202, rebuilt.text
        [view] = rebuilt.json()["projections"]
        assert (view["generation"], view["rebuild"]["state"], view["rebuild"]["position"]) == (
            1,
            "swapped",
            4,
        )
        assert answers(client, headers, 4) == EXPECTED
