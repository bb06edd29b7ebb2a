"""`/v1/routes` through the app: CRUD, history, mode rules, the lab warning, hot switches."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from app.settings import Settings
from tests.http.conftest import start_live_server
from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision, provision_sync

SQLITE_A = {"resource_kind": "event_spine", "tenant_id": "t1", "env": "dev", "backend_type": "sqlite", "config": {"path": "a.db"}}  # fmt: skip


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return admin_headers_sync(client)


def append(client: TestClient, headers: dict[str, str], type_: str = "x") -> Any:
    return client.post("/v1/events", json={"stream": "s", "events": [{"type": type_}]}, headers=headers)


def test_lab_without_a_route_warns_and_uses_the_lab_store(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = append(client, headers)
    assert response.status_code == 201
    assert response.headers["x-spine-warning"] == "event_spine.missing_route"
    assert client.get("/v1/events", headers=headers).headers["x-spine-warning"] == "event_spine.missing_route"


def test_the_lab_warning_names_the_fallbacks_an_answer_was_served_by(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    """One hook says it for every route: the spine's fallback first, then the views'; a read
    names the view it read (not the spine it looked the head up in); an error answer names none."""
    written = client.put("/v1/runs/r1/blackboard/k", json={"value": 1}, headers=headers)
    assert written.headers["x-spine-warning"] == "event_spine.missing_route, blackboard_store.missing_route"
    waited = {**headers, "X-Spine-Min-Position": written.headers["x-spine-position"]}
    for read in (client.get("/v1/runs/r1/blackboard/k", headers=waited), client.get("/v1/runs/r1/blackboard", headers=headers)):  # fmt: skip
        assert (read.status_code, read.headers["x-spine-warning"]) == (200, "blackboard_store.missing_route")
    conflict = client.put(
        "/v1/runs/r1/blackboard/k", json={"value": 2, "expected_version": 7}, headers=headers
    )
    assert conflict.status_code == 409
    assert "x-spine-warning" not in conflict.headers
    assert "x-spine-warning" not in client.get("/v1/runs/r1/blackboard/nope", headers=headers).headers
    memory_route = {**SQLITE_A, "resource_kind": "memory_store", "backend_type": "memory", "config": {}}
    assert client.put("/v1/routes", json=memory_route, headers=admin).status_code == 200
    routed_view = client.put("/v1/memory/k", json={"value": 1}, headers=headers)
    assert routed_view.headers["x-spine-warning"] == "event_spine.missing_route"
    assert "x-spine-warning" not in client.get("/v1/memory/k", headers=headers).headers
    assert "x-spine-warning" not in client.get("/v1/routes", headers=admin).headers  # no data route


def test_routes_are_written_listed_and_deleted_by_system_admins(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    written = client.put(
        "/v1/routes", json={**SQLITE_A, "tier": "gold", "cost_notes": "cheap"}, headers=admin
    )
    assert written.status_code == 200
    assert (written.json()["switched"], written.json()["tier"]) == (False, "gold")
    [listed] = client.get("/v1/routes", params={"tenant_id": "t1"}, headers=admin).json()["routes"]
    assert listed["config"] == {"path": "a.db"}
    deleted = client.delete(
        "/v1/routes", params={"resource_kind": "event_spine", "tenant_id": "t1", "env": "dev"}, headers=admin
    )
    assert deleted.json()["status"] == "deleted"
    assert client.get("/v1/routes", headers=admin).json()["routes"] == []
    again = client.delete(
        "/v1/routes", params={"resource_kind": "event_spine", "tenant_id": "t1", "env": "dev"}, headers=admin
    )
    assert_problem(again, 404, "route.not_found")
    changes = client.get("/v1/routes/history", headers=admin).json()["changes"]
    assert [change["action"] for change in changes] == ["set", "deleted"]
    assert changes[0]["actor"] == "admin"


def test_members_and_tenant_admins_may_not_write_routes(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    assert_problem(client.put("/v1/routes", json=SQLITE_A, headers=headers), 403, "auth.forbidden")
    boss = provision_sync(client, user="boss", role="admin")
    assert_problem(client.put("/v1/routes", json=SQLITE_A, headers=boss), 403, "auth.forbidden")
    # tenant admins read their own routes and the platform defaults, and nobody else's
    client.put("/v1/routes", json=SQLITE_A, headers=admin)
    client.put("/v1/routes", json={**SQLITE_A, "tenant_id": "*"}, headers=admin)
    provision_sync(client, tenant="t2")
    client.put("/v1/routes", json={**SQLITE_A, "tenant_id": "t2"}, headers=admin)
    seen = client.get("/v1/routes", headers=boss).json()["routes"]
    assert sorted(route["tenant_id"] for route in seen) == ["*", "t1"]
    assert_problem(client.get("/v1/routes", params={"tenant_id": "t2"}, headers=boss), 403, "auth.forbidden")
    history = client.get("/v1/routes/history", headers=boss).json()["changes"]
    assert {change["key"][1] for change in history} == {"*", "t1"}


@pytest.mark.parametrize(
    "backend", [{"backend_type": "sqlite", "config": {"path": "x.db"}}, {"backend_type": "memory"}]
)
def test_a_saas_tenant_is_refused_embedded_backends(
    client: TestClient, admin: dict[str, str], backend: dict[str, Any]
) -> None:
    saas = provision_sync(client, tenant="t9", mode="saas")
    route = {"resource_kind": "event_spine", "tenant_id": "t9", "env": "dev", **backend}
    assert_problem(client.put("/v1/routes", json=route, headers=admin), 400, "routing.forbidden_backend")
    # without a route: 503 with the exact code, no lab fallback
    assert_problem(append(client, saas), 503, "event_spine.missing_route")
    # a platform default naming an embedded store serves lab tenants and is refused to saas ones
    client.put("/v1/routes", json={**route, "tenant_id": "*"}, headers=admin)
    assert_problem(append(client, saas), 503, "routing.forbidden_backend")


def test_an_inline_secret_is_refused_and_never_echoed(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    secret = "sk-" + uuid.uuid4().hex
    route = {
        **SQLITE_A,
        "backend_type": "cosmos",
        "config": {"endpoint": "e", "database": "d", "key": secret},
    }
    response = client.put("/v1/routes", json=route, headers=admin)
    assert assert_problem(response, 422, "routing.secret_in_config")["key"] == "config.key"
    assert secret not in response.text
    ok = client.put("/v1/routes", json={**route, "config": {**route["config"], "key": "secret://env/COSMOS_KEY"}},
                    headers=admin)  # fmt: skip
    assert ok.json()["config"]["key"] == "secret://env/COSMOS_KEY"


def test_a_switch_takes_effect_on_the_next_request_and_is_audited(
    client: TestClient, headers: dict[str, str], admin: dict[str, str], settings: Settings
) -> None:
    client.put("/v1/routes", json=SQLITE_A, headers=admin)
    assert append(client, headers, "in-a").json()["first_position"] == 1
    moved = client.put("/v1/routes", json={**SQLITE_A, "config": {"path": "b.db"}, "switch_rationale": "bigger disk"},
                       headers=admin)  # fmt: skip
    assert moved.json()["switched"] is True
    assert moved.json()["previous_backend_type"] == "sqlite"
    assert append(client, headers, "in-b").json()["first_position"] == 1  # a new log, in the new file
    assert [e["type"] for e in client.get("/v1/events", headers=headers).json()["events"]] == ["in-b"]
    assert (settings.data_dir / "a.db").exists()
    assert (settings.data_dir / "b.db").exists()
    audit = client.blocking_portal.call(_audit_events, client, "t1")
    assert [(e["old_backend"], e["new_backend"], e["rationale"], e["actor"]) for e in audit] == [
        ("sqlite", "sqlite", "bigger disk", "admin")
    ]


async def _audit_events(client: TestClient, tenant: str) -> list[dict[str, Any]]:
    from domain.partition import Partition

    spine = client.app.state.services.spine
    page = await spine.read(
        Partition(tenant_id=tenant, env="dev", project_id="_audit"), stream="audit:routing"
    )
    return [event.data for event in page.events]


@pytest.mark.redis
async def test_a_second_running_instance_sees_a_switch_without_restart(
    tmp_path: Path, settings: Settings, redis_url: str
) -> None:
    """Two app instances on one data dir, notified through Redis: a route written through one
    decides where the other's next append lands."""
    shared = msgspec.structs.replace(settings, data_dir=tmp_path, redis_url=redis_url)
    first, second = start_live_server(shared), start_live_server(shared)
    try:
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=10) as one,
            httpx.AsyncClient(base_url=second.url, timeout=10) as two,
        ):
            member = await provision(one)
            admin = {"Authorization": (await one.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": "test-bootstrap-key"})).json()["token"]}  # fmt: skip
            admin["Authorization"] = "Bearer " + admin["Authorization"]
            body = {"stream": "s", "events": [{"type": "x"}]}
            assert (await two.post("/v1/events", json=body, headers=member)).headers["x-spine-warning"]
            routed = await one.put(
                "/v1/routes", json={**SQLITE_A, "config": {"path": "routed.db"}}, headers=admin
            )
            assert routed.status_code == 200
            with anyio.fail_after(10):
                while (  # noqa: ASYNC110 - the other process learns of the route by notification
                    "x-spine-warning"
                    in (answer := await two.post("/v1/events", json=body, headers=member)).headers
                ):
                    await anyio.sleep(0.05)
            assert answer.json()["first_position"] == 1  # landed in routed.db, a fresh log
            assert (tmp_path / "routed.db").exists()
    finally:
        for live in (first, second):
            live.server.should_exit = True
            live.thread.join(timeout=10)


def test_diagnostics_show_route_status_and_round_trip(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    client.put("/v1/routes", json=SQLITE_A, headers=admin)
    provision_sync(client, tenant="t9", mode="saas")
    (client.app.state.settings.data_dir / "dir.db").mkdir()
    provision_sync(client, tenant="t8")
    client.put(
        "/v1/routes", json={**SQLITE_A, "tenant_id": "t8", "config": {"path": "dir.db"}}, headers=admin
    )
    answer = client.get("/v1/diagnostics", headers=admin).json()
    assert (answer["deployment"], answer["ready"]) == ("lab", True)
    checks = {(c["tenant_id"], c["resource_kind"]): c for c in answer["checks"]}
    ok = checks[("t1", "event_spine")]
    assert (ok["status"], ok["backend_type"]) == ("ok", "sqlite")
    assert ok["round_trip_ms"] >= 0
    lab_missing = checks[("t1", "memory_store")]
    assert (lab_missing["status"], lab_missing["error_code"]) == ("missing", "memory_store.missing_route")
    assert lab_missing["warnings"]
    assert lab_missing["lab_fallback"] is True  # a warning: the embedded store serves it
    saas = checks[("t9", "tabular_store")]
    assert (saas["status"], saas["error_code"], saas["warnings"], saas["lab_fallback"]) == (
        "missing",
        "save_store.missing_route",
        [],
        False,
    )
    broken = checks[("t8", "event_spine")]
    assert (broken["status"], broken["error_code"]) == ("unreachable", "event_spine.backend_unavailable")
    # a platform default naming an embedded store is forbidden to the saas tenant
    client.put("/v1/routes", json={**SQLITE_A, "tenant_id": "*"}, headers=admin)
    checks = {
        (c["tenant_id"], c["resource_kind"]): c
        for c in client.get("/v1/diagnostics", headers=admin).json()["checks"]
    }
    assert checks[("t9", "event_spine")]["status"] == "forbidden"


def test_tenant_admins_diagnose_their_own_tenant_only(client: TestClient, headers: dict[str, str]) -> None:
    boss = provision_sync(client, user="boss", role="admin")
    provision_sync(client, tenant="t2")
    mine = client.get("/v1/diagnostics", headers=boss).json()["checks"]
    assert {check["tenant_id"] for check in mine} == {"t1"}
    assert_problem(
        client.get("/v1/diagnostics", params={"tenant_id": "t2"}, headers=boss), 403, "auth.forbidden"
    )
    assert_problem(client.get("/v1/diagnostics", headers=headers), 403, "auth.forbidden")


def test_outside_lab_readiness_waits_for_every_platform_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, deployment="production", bootstrap_key="k", token_key="t" * 32)
    from app.http.factory import create_app

    with TestClient(create_app(settings)) as client:
        token = client.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": "k"}).json()["token"]
        admin = {"Authorization": f"Bearer {token}"}
        problem = assert_problem(client.get("/ready"), 503, "routing.not_ready")
        kinds = problem["missing_routes"]
        assert len(kinds) == 8
        for kind in kinds:
            route = {"resource_kind": kind, "tenant_id": "*", "env": "dev", "backend_type": "dynamodb",
                     "config": {"table": "spine", "region": "eu-west-1"}}  # fmt: skip
            assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
            if kind != kinds[-1]:
                assert (
                    kind
                    not in assert_problem(client.get("/ready"), 503, "routing.not_ready")["missing_routes"]
                )
        assert client.get("/ready").json() == {"status": "ready"}
        assert client.get("/v1/diagnostics", headers=admin).json()["ready"] is True


def test_route_envs_are_normalized_like_requests(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    stored = client.put("/v1/routes", json={**SQLITE_A, "env": "production"}, headers=admin).json()
    assert stored["env"] == "prod"
    answer = append(client, {**headers, "X-Env": "production"})
    assert answer.status_code == 201
    assert "x-spine-warning" not in answer.headers  # resolved, no lab fallback
    assert client.get("/v1/routes", params={"env": "production"}, headers=admin).json()["routes"]
    gone = client.delete(
        "/v1/routes",
        params={"resource_kind": "event_spine", "tenant_id": "t1", "env": "production"},
        headers=admin,
    )
    assert gone.status_code == 200


@pytest.mark.parametrize("path", ["/etc/spine.db", "../outside.db", "a/../../outside.db"])
def test_sqlite_routes_stay_inside_the_data_dir(
    client: TestClient, headers: dict[str, str], admin: dict[str, str], path: str
) -> None:
    response = client.put("/v1/routes", json={**SQLITE_A, "config": {"path": path}}, headers=admin)
    assert_problem(response, 422, "request.invalid")


def test_a_change_that_is_no_switch_has_no_rationale_in_history(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    client.put("/v1/routes", json=SQLITE_A, headers=admin)
    client.put(
        "/v1/routes", json={**SQLITE_A, "config": {"path": "b.db"}, "switch_rationale": "disk"}, headers=admin
    )
    client.put("/v1/routes", json={**SQLITE_A, "config": {"path": "b.db"}, "tier": "gold"}, headers=admin)
    changes = client.get("/v1/routes/history", headers=admin).json()["changes"]
    assert [change["rationale"] for change in changes] == [None, "disk", None]
