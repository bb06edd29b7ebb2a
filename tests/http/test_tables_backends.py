"""The tabular store's contract on every backend that can hold it: a lab tenant whose event spine
and `tabular_store` are routed to SQLite, or to a real DynamoDB, Firestore or Cosmos DB peer, runs
the same operations and gets the same answers, and a rebuild from the log reads the same again.

The cloud peers skip locally when they cannot run, and fail under CI=true (`tests/peers`).
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from tests.http.test_cloud_routes import cosmos_config, dynamodb_config, firestore_config
from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync

URL = "/v1/tables/catalog"
ROWS = f"{URL}/rows"
SCHEMA = {"type": "object", "properties": {"price": {"type": "number", "minimum": 0}}, "required": ["price"]}


def sqlite_config(_: pytest.MonkeyPatch) -> dict[str, Any]:
    return {"path": "tables-routed.db"}  # inside the data dir: a store of its own, not the lab one


BACKENDS = {"sqlite": sqlite_config, "dynamodb": dynamodb_config, "firestore": firestore_config,
            "cosmos": cosmos_config}  # fmt: skip


def ok(answer: Any) -> Any:
    assert answer.status_code == 200, answer.text
    assert "x-spine-warning" not in answer.headers  # routed: no lab fallback
    return answer.json()


def reads(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """Everything the API shows of the table, with the wall-clock times left out."""
    seen: dict[str, Any] = {"definition": ok(client.get(URL, headers=headers))}
    rows, cursor = [], None
    while True:  # one row a page: the cursor crosses keys with '/', '.' and ':'
        page = ok(
            client.get(ROWS, params={"limit": 1, **({"after": cursor} if cursor else {})}, headers=headers)
        )
        rows.extend(page["rows"])
        if (cursor := page["next"]) is None:
            break
    seen["rows"] = rows
    seen["shoes"] = ok(client.get(ROWS, params={"prefix": "shoes/"}, headers=headers))["rows"]
    for key in ("shoes/red", "gone"):
        seen[f"{key}/versions"] = ok(client.get(f"{ROWS}/{key}/versions", headers=headers))["versions"]
        seen[f"{key}/1"] = ok(client.get(f"{ROWS}/{key}/versions/1", headers=headers))
    return _timeless(seen)


def _timeless(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k != "updated_at"}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_every_backend_answers_the_tables_contract_alike_and_rebuilds_the_same(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    config = BACKENDS[backend](monkeypatch)
    with TestClient(create_app(settings)) as client:
        headers = provision_sync(client)
        admin = admin_headers_sync(client)
        for kind in ("event_spine", "tabular_store"):
            route = {"resource_kind": kind, "tenant_id": "t1", "env": "dev", "project_id": "p1",
                     "backend_type": backend, "config": config}  # fmt: skip
            assert client.put("/v1/routes", json=route, headers=admin).status_code == 200

        assert (
            ok(client.put(URL, json={"schema": SCHEMA, "description": "prices"}, headers=headers))["version"]
            == 1
        )
        for n, key in enumerate(("shoes/red", "shoes/blue", "hats.top", "a:b@1", "gone")):
            assert (
                ok(client.put(f"{ROWS}/{key}", json={"value": {"price": n}}, headers=headers))["position"]
                == n + 2
            )
        refused = client.put(f"{ROWS}/shoes/red", json={"value": {"price": -1}}, headers=headers)
        assert assert_problem(refused, 422, "tabular.schema_violation")["field"] == "/value/price"
        second = client.put(
            f"{ROWS}/shoes/red", json={"value": {"price": 9}, "expected_version": 1}, headers=headers
        )
        assert ok(second) == {"table": "catalog", "key": "shoes/red", "version": 2, "position": 7}
        stale = client.put(
            f"{ROWS}/shoes/red", json={"value": {"price": 8}}, headers={**headers, "If-Match": '"1"'}
        )
        assert assert_problem(stale, 409, "tabular.version_conflict")["current_version"] == 2
        gone = client.delete(f"{ROWS}/gone", headers=headers)
        assert ok(gone) == {"table": "catalog", "key": "gone", "deleted": True, "version": 2, "position": 8}
        assert_problem(client.delete(f"{ROWS}/gone", headers=headers), 404, "tabular.not_found")
        assert ok(client.get("/v1/events", headers=headers))["head"] == 8

        wait = {**headers, "X-Spine-Min-Position": "8"}
        assert_problem(client.get(f"{ROWS}/gone", headers=wait), 404, "tabular.not_found")
        assert_problem(client.get(f"{ROWS}/nothing", headers=wait), 404, "tabular.not_found")
        before = reads(client, wait)
        assert [(r["key"], r["value"]["price"], r["version"]) for r in before["rows"]] == [
            ("a:b@1", 3, 1), ("hats.top", 2, 1), ("shoes/blue", 1, 1), ("shoes/red", 9, 2)]  # fmt: skip
        assert [r["key"] for r in before["shoes"]] == ["shoes/blue", "shoes/red"]
        assert [(v["version"], v["change"]) for v in before["gone/versions"]] == [
            (1, "written"),
            (2, "deleted"),
        ]
        assert (before["shoes/red/1"]["value"], before["definition"]["schema"]) == ({"price": 0}, SCHEMA)

        answer = client.post("/v1/projections/tables/rebuild?wait=true", headers=admin)
        assert answer.status_code == 202, answer.text
        [view] = answer.json()["projections"]
        assert (view["generation"], view["rebuild"]["state"], view["rebuild"]["position"]) == (
            1,
            "swapped",
            8,
        )
        assert reads(client, wait) == before
