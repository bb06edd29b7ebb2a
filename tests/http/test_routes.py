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

from spine.app.settings import Settings
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
    assert_problem(response, 422, "request.invalid")
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
    from spine.domain.partition import Partition

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
