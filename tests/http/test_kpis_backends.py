"""The KPI contract on every backend: a tenant whose `event_spine` and `kpi_store` are routed to
SQLite, DynamoDB (Local), Firestore (emulator) or Cosmos (its peer) gets the same answers to the
same sequence of definitions, values, retries, series and a rebuild. Peers that are absent skip
locally and fail under CI=true (`tests.peers`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from domain.kpis import value_id
from domain.partition import Partition
from tests.http.conftest import Clock
from tests.http.test_cloud_routes import cosmos_config, dynamodb_config, firestore_config
from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync

NOW = datetime(2026, 3, 10, 12, 30, 15, tzinfo=UTC)


def sqlite_config(_: pytest.MonkeyPatch) -> dict[str, Any]:
    return {"path": "kpi-backend.db"}


BACKENDS: list[tuple[str, Callable[[pytest.MonkeyPatch], dict[str, Any]]]] = [
    ("sqlite", sqlite_config),
    ("dynamodb", dynamodb_config),
    ("firestore", firestore_config),
    ("cosmos", cosmos_config),
]


def at(**delta: float) -> str:
    return (NOW + timedelta(**delta)).isoformat()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def sequence(client: TestClient, headers: dict[str, str], admin: dict[str, str]) -> list[Any]:
    """Every answer of the sequence, without the times the spine recorded (`updated_at`)."""
    answers: list[Any] = []
    app = {**headers, "X-App-Id": "app1"}
    answers.append(
        ok(client.put("/v1/kpis/latency", json={"unit": "ms", "aggregation": "p95"}, headers=headers))
    )
    answers.append(assert_problem(client.post("/v1/kpis/nothing/values", json={"value": 1}, headers=headers), 404, "kpi.not_found")["name"])  # fmt: skip
    batch = [
        {"value": n * 1.5 - 4, "at": at(minutes=-13 * n), "run_id": f"run-{n % 3}", "id": f"b{n}"}
        for n in range(40)
    ]
    answers.append(ok(client.post("/v1/kpis/latency/values", json={"values": batch}, headers=app), 201))
    answers.append(
        ok(client.post("/v1/kpis/latency/values", json={"values": batch[:5]}, headers=app), 201)
    )  # retry
    grown = [*batch[38:], {"value": 1000, "at": at(seconds=-1), "id": "b40"}]  # part of it stored before
    answers.append(ok(client.post("/v1/kpis/latency/values", json={"values": grown}, headers=headers), 201))
    single = ok(
        client.post("/v1/kpis/latency/values", json={"value": -7.25, "at": at(hours=-30)}, headers=app), 201
    )
    answers.append(single["position"])
    stale = client.put(
        "/v1/kpis/latency", json={"unit": "ms", "aggregation": "max"}, headers={**headers, "If-Match": '"2"'}
    )
    answers.append(assert_problem(stale, 409, "kpi.version_conflict")["current_version"])
    last = client.put(
        "/v1/kpis/latency", json={"unit": "ms", "aggregation": "max"}, headers={**headers, "If-Match": '"1"'}
    )
    answers.append(ok(last))
    wait = {**headers, "X-Spine-Min-Position": last.headers["x-spine-position"]}
    definition = ok(client.get("/v1/kpis/latency", headers=wait))
    assert str(definition.pop("updated_at")).endswith("Z")
    answers.append(definition)

    def series() -> list[Any]:
        found = []
        for bucket, span in (("minute", {"hours": -12}), ("hour", {"days": -3}), ("day", {"days": -5})):
            for dimension in ("none", "app", "surface", "run"):
                params = {"bucket": bucket, "dimension": dimension, "from": at(**span), "to": at(minutes=1)}
                found.append(ok(client.get("/v1/kpis/latency/series", params=params, headers=wait)))
        params = {"bucket": "day", "dimension": "run", "value": "run-1", "from": at(days=-5)}
        found.append(ok(client.get("/v1/kpis/latency/series", params=params, headers=wait)))
        return found

    before = series()
    answers.append(before)
    rebuilt = client.post("/v1/projections/kpis/rebuild?wait=true", headers=admin)
    assert rebuilt.status_code == 202, rebuilt.text
    assert [(p["generation"], p["rebuild"]["state"]) for p in rebuilt.json()["projections"]] == [
        (1, "swapped")
    ]
    assert series() == before
    return answers


@pytest.mark.parametrize(("backend", "config_of"), BACKENDS)
def test_the_kpi_contract_answers_the_same_on_every_backend(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, backend: str, config_of: Any
) -> None:
    config = config_of(monkeypatch)
    with TestClient(create_app(settings, clock=Clock(NOW))) as client:
        headers = provision_sync(client)
        admin = admin_headers_sync(client)
        for kind in ("event_spine", "kpi_store"):
            route = {"resource_kind": kind, "tenant_id": "t1", "env": "dev", "project_id": "p1",
                     "backend_type": backend, "config": config}  # fmt: skip
            assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
        answers = sequence(client, headers, admin)
    ids = [value_id(P, "latency", f"b{n}") for n in range(41)]
    assert answers[:9] == [
        {"name": "latency", "version": 1, "position": 1},
        "nothing",
        {"name": "latency", "ids": ids[:40], "position": 41},
        {"name": "latency", "ids": ids[:5], "position": 6},  # the retry: the original positions
        {"name": "latency", "ids": ids[38:], "position": 42},  # b38, b39 stored; b40 appended
        43,
        1,
        {"name": "latency", "version": 2, "position": 44},
        {"name": "latency", "unit": "ms", "aggregation": "max", "description": None, "version": 2,
         "position": 44, "updated_by": "u1"},
    ]  # fmt: skip
    series = answers[9]
    assert [_totals(answer) for answer in series] == EXPECTED_TOTALS
    day = [(p["start"], p["count"], p["value"]) for p in series[8]["series"][0]["points"]]
    assert day == [("2026-03-09T00:00:00Z", 1, -7.25), ("2026-03-10T00:00:00Z", 41, 1000.0)]
    [run] = series[12]["series"]
    assert (run["dimension_value"], sum(p["count"] for p in run["points"])) == ("run-1", 13)


P = Partition(tenant_id="t1", env="dev", project_id="p1")
_BATCH = [(n * 1.5 - 4, -13 * 60 * n, "app1", f"run-{n % 3}") for n in range(40)]
_SENT = [*_BATCH, (1000.0, -1, None, None), (-7.25, -30 * 3600, "app1", None)]  # (value, seconds, app, run)


def _model(span: int, dimension: str) -> list[tuple[Any, int, float]]:
    """(dimension value, count, sum) of the values sent since `span` seconds before now."""
    found: dict[Any, tuple[int, float]] = {}
    for value, seconds, app, run in _SENT:
        key = {"none": None, "app": app, "surface": "web", "run": run}[dimension]
        if seconds >= -span and (dimension == "none" or key is not None):
            count, total = found.get(key, (0, 0.0))
            found[key] = (count + 1, total + value)
    return [(key, *found[key]) for key in sorted(found, key=lambda k: k or "")]


# minute (12 hours), hour (3 days), day (5 days): by none, app, surface, run; then run-1 by day
EXPECTED_TOTALS = [
    _model(span, dimension)
    for span in (12 * 3600, 3 * 86400, 5 * 86400)
    for dimension in ("none", "app", "surface", "run")
] + [[("run-1", 13, sum(v for v, _, _, run in _SENT if run == "run-1"))]]


def _totals(answer: dict[str, Any]) -> list[tuple[Any, int, float]]:
    return [
        (
            series["dimension_value"],
            sum(p["count"] for p in series["points"]),
            sum(p["sum"] for p in series["points"]),
        )
        for series in answer["series"]
    ]
