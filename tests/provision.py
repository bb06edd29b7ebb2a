"""Provisioning a tenant through the API, as a user would: bootstrap, tenant, project, surface,
member, token. One list of steps, run by the sync test client or an async httpx client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

BOOTSTRAP_KEY = "test-bootstrap-key"


Step = tuple[str, str, dict[str, Any] | None]


def _steps(tenant: str, project: str, surface: str, user: str, role: str, mode: str) -> Iterator[Step]:
    """Yields requests; receives each answer. The first answer carries the admin token."""
    yield "POST", "/v1/tenants", {"tenant_id": tenant, "name": tenant, "mode": mode}
    yield "POST", f"/v1/tenants/{tenant}/projects", {"project_id": project, "name": project}
    yield "POST", f"/v1/tenants/{tenant}/surfaces", {"surface_id": surface, "name": surface}
    yield "POST", f"/v1/tenants/{tenant}/apps", {"app_id": "app1", "name": "app1"}
    yield "POST", f"/v1/tenants/{tenant}/members", {"user_id": user, "role": role}


def _headers(token: str, project: str, surface: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Project-Id": project, "X-Surface-Id": surface}


def _check(response: httpx.Response) -> httpx.Response:
    # 409: provisioned already by an earlier call of the same test
    assert response.status_code in (200, 201, 409), response.text
    return response


def admin_headers_sync(client: Any) -> dict[str, str]:
    token = _check(client.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": BOOTSTRAP_KEY})).json()[
        "token"
    ]
    return {"Authorization": f"Bearer {token}"}


def provision_sync(
    client: Any,
    tenant: str = "t1",
    project: str = "p1",
    surface: str = "web",
    user: str = "u1",
    role: str = "member",
    mode: str = "lab",
) -> dict[str, str]:
    """Data-route headers for `user` of `tenant`, through the sync test client."""
    admin = admin_headers_sync(client)
    for method, path, body in _steps(tenant, project, surface, user, role, mode):
        _check(client.request(method, path, json=body, headers=admin))
    token = _check(client.post(f"/v1/tenants/{tenant}/tokens", json={"user_id": user}, headers=admin))
    return _headers(token.json()["token"], project, surface)


async def provision(
    http: httpx.AsyncClient,
    tenant: str = "t1",
    project: str = "p1",
    surface: str = "web",
    user: str = "u1",
    role: str = "member",
    mode: str = "lab",
    bootstrap_key: str = BOOTSTRAP_KEY,
) -> dict[str, str]:
    """The same, over HTTP to a running server."""
    answer = _check(await http.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": bootstrap_key}))
    admin = {"Authorization": f"Bearer {answer.json()['token']}"}
    for method, path, body in _steps(tenant, project, surface, user, role, mode):
        _check(await http.request(method, path, json=body, headers=admin))
    token = _check(await http.post(f"/v1/tenants/{tenant}/tokens", json={"user_id": user}, headers=admin))
    return _headers(token.json()["token"], project, surface)
