"""A tenant routed to a cloud backend (its real peer): its log and its views live there, and
survive the service's restart."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from domain.backend_url import Backend
from tests.http.test_events_api import assert_problem
from tests.peers import cosmos, dynamodb, firestore
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision_sync


def dynamodb_config(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # the peer accepts any keys; the service takes them from the default AWS chain, never a route
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    return {"table": f"spine-http-{uuid.uuid4().hex[:12]}", "region": dynamodb.REGION,
            "endpoint_url": dynamodb.endpoint(), "create_table": True}  # fmt: skip


def cosmos_config(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # the account key reaches the service by reference only (lab may read secret://env/…)
    monkeypatch.setenv("TEST_SPINE_COSMOS_KEY", cosmos.KEY)
    return {"endpoint": cosmos.endpoint(), "database": f"spine-http-{uuid.uuid4().hex[:12]}",
            "key": "secret://env/TEST_SPINE_COSMOS_KEY"}  # fmt: skip


def firestore_config(_: pytest.MonkeyPatch) -> dict[str, Any]:
    return {"project": f"spine-http-{uuid.uuid4().hex[:12]}", "emulator_host": firestore.emulator_host()}


@pytest.mark.parametrize(
    ("backend", "config_of"),
    [("dynamodb", dynamodb_config), ("firestore", firestore_config), ("cosmos", cosmos_config)],
)
def test_a_tenant_routed_to_a_cloud_backend_keeps_its_log_and_views_there(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, backend: str, config_of: Any
) -> None:
    config = config_of(monkeypatch)
    with TestClient(create_app(settings)) as client:
        headers = provision_sync(client)
        admin = admin_headers_sync(client)
        for kind in ("event_spine", "memory_store"):
            route = {"resource_kind": kind, "tenant_id": "t1", "env": "dev", "project_id": "p1",
                     "backend_type": backend, "config": config}  # fmt: skip
            assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
        written = client.put("/v1/memory/goal", json={"value": "ship"}, headers=headers)
        assert written.status_code == 200, written.text
        assert "x-spine-warning" not in written.headers  # routed: no lab fallback
        wait = {**headers, "X-Spine-Min-Position": written.headers["x-spine-position"]}
        assert client.get("/v1/memory/goal", headers=wait).json()["value"] == "ship"
        [event] = client.get("/v1/events", headers=headers).json()["events"]
        assert (event["type"], event["position"]) == ("memory.set", 1)
    with TestClient(create_app(settings)) as client:  # routes are in the system spine, data in the backend
        assert client.get("/v1/memory/goal", headers=wait).json()["value"] == "ship"
        assert client.get("/v1/events", headers=headers).json()["head"] == 1


def test_a_route_whose_secret_cannot_be_read_is_a_503_that_names_the_reference_only(
    client: TestClient, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_SPINE_MISSING_KEY", raising=False)
    route = {"resource_kind": "event_spine", "tenant_id": "t1", "env": "dev", "project_id": "p1",
             "backend_type": "cosmos", "config": {"endpoint": "http://127.0.0.1:9", "database": "d",
                                                  "key": "secret://env/TEST_SPINE_MISSING_KEY"}}  # fmt: skip
    assert client.put("/v1/routes", json=route, headers=admin_headers_sync(client)).status_code == 200
    answer = client.get("/v1/events", headers=headers)
    problem = assert_problem(answer, 503, "secret.unavailable")
    assert "TEST_SPINE_MISSING_KEY" in problem["message"]


@pytest.mark.parametrize(
    ("backend", "config_of"),
    [("dynamodb", dynamodb_config), ("firestore", firestore_config), ("cosmos", cosmos_config)],
)
def test_the_system_spine_on_a_cloud_backend_keeps_the_control_plane_log_and_views_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, config_of: Any
) -> None:
    """SPINE_SYSTEM_URL names the peer: tenants, routes, a lab tenant's log and its views live
    there, and a restarted service on a fresh data dir (another instance) finds them all."""
    url = Backend(backend_type=backend, config=config_of(monkeypatch)).url  # type: ignore[arg-type]
    first, second = (Settings(data_dir=tmp_path / name, system_url=url, bootstrap_key=BOOTSTRAP_KEY,
                              token_key="k" * 32) for name in ("a", "b"))  # fmt: skip
    with TestClient(create_app(first)) as client:
        headers = provision_sync(client)
        written = client.put("/v1/memory/goal", json={"value": "ship"}, headers=headers)
        assert written.status_code == 200, written.text
        wait = {**headers, "X-Spine-Min-Position": written.headers["x-spine-position"]}
        assert client.get("/v1/memory/goal", headers=wait).json()["value"] == "ship"
    assert not (tmp_path / "a").exists()  # nothing kept on local disk
    with TestClient(create_app(second)) as client:
        assert client.get("/v1/memory/goal", headers=wait).json()["value"] == "ship"
        [event] = client.get("/v1/events", headers=headers).json()["events"]
        assert (event["type"], event["position"]) == ("memory.set", 1)
        routes = client.get("/v1/routes", headers=admin_headers_sync(client))
        assert routes.status_code == 200, routes.text
