"""`GET /v1/tenants`: the tenants one administers — every one for a system admin, their own for a
tenant admin, none (403) for a member."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync


def test_each_identity_lists_what_it_administers(client: TestClient[Any]) -> None:
    member = provision_sync(client)
    provision_sync(client, tenant="t2", project="p9", mode="saas")
    client.post(
        "/v1/tenants/t1/projects", json={"project_id": "p0", "name": "P0"}, headers=admin_headers_sync(client)
    )
    boss = provision_sync(client, user="boss", role="admin")

    everything = client.get("/v1/tenants", headers=admin_headers_sync(client))
    assert everything.status_code == 200, everything.text
    assert everything.json()["tenants"] == [
        {"tenant_id": "t1", "name": "t1", "mode": "lab", "projects": ["p0", "p1"]},
        {"tenant_id": "t2", "name": "t2", "mode": "saas", "projects": ["p9"]},
        {"tenant_id": "t_system", "name": "system", "mode": "system", "projects": []},
    ]
    own = client.get("/v1/tenants", headers={"Authorization": boss["Authorization"]})
    assert [tenant["tenant_id"] for tenant in own.json()["tenants"]] == ["t1"]
    assert_problem(client.get("/v1/tenants", headers=member), 403, "auth.forbidden")
    assert_problem(client.get("/v1/tenants"), 401, "auth.missing_token")


def test_the_document_declares_the_listing(client: TestClient[Any]) -> None:
    operation = client.get("/schema/openapi.json").json()["paths"]["/v1/tenants"]["get"]
    assert {"200", "401", "403"} <= set(operation["responses"])
    assert operation["security"] == [{"bearer": []}]
