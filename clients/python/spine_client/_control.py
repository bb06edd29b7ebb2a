"""The control plane's and operators' calls: bootstrap, tenants and what they hold, tokens, routes,
diagnostics, projections. They need a token of an admin, and no project or surface.

Their answers are plain dicts: records an operator reads, whose fields grow with the service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from spine_client._calls import Call, call, present, segment
from spine_client.types import Bootstrapped, Token

Record = dict[str, Any]
Role = Literal["admin", "member", "agent"]


def bootstrap(key: str, *, user_id: str | None = None) -> Call[Bootstrapped]:
    """Create `t_system` and its first admin (idempotent); answers an admin token. Send it from a
    client without a token: the bootstrap key is the credential."""
    headers = {"X-Bootstrap-Key": key}
    return call("POST", "/v1/auth/bootstrap", Bootstrapped, json=present(user_id=user_id), headers=headers,
                idempotent=True)  # fmt: skip


def list_modes() -> Call[list[Record]]:
    return call("GET", "/v1/modes", list[Record])


def create_tenant(tenant_id: str, name: str, *, mode: str | None = None) -> Call[Record]:
    """A tenant (system admins); `mode`: saas (the default), enterprise or lab."""
    return call("POST", "/v1/tenants", Record, json=present(tenant_id=tenant_id, name=name, mode=mode))


def get_tenant(tenant_id: str) -> Call[Record]:
    """A tenant with its projects, surfaces, apps and members."""
    return call("GET", _tenant(tenant_id), Record)


def create_project(tenant_id: str, project_id: str, name: str) -> Call[Record]:
    return call(
        "POST", f"{_tenant(tenant_id)}/projects", Record, json={"project_id": project_id, "name": name}
    )


def create_surface(tenant_id: str, surface_id: str, name: str) -> Call[Record]:
    return call(
        "POST", f"{_tenant(tenant_id)}/surfaces", Record, json={"surface_id": surface_id, "name": name}
    )


def create_app(tenant_id: str, app_id: str, name: str) -> Call[Record]:
    return call("POST", f"{_tenant(tenant_id)}/apps", Record, json={"app_id": app_id, "name": name})


def put_app(tenant_id: str, app_id: str, name: str, *, origins: Sequence[str] = ()) -> Call[Record]:
    """Create an app or replace its name and origins (the browser origins CORS allows for the
    tenant): a PUT sets the whole record, so origins left out are cleared."""
    sent = {"name": name, "origins": list(origins)}
    return call("PUT", f"{_tenant(tenant_id)}/apps/{segment(app_id)}", Record, json=sent)


def set_member(tenant_id: str, user_id: str, role: Role) -> Call[Record]:
    """Add a member, or change a member's role."""
    sent = {"user_id": user_id, "role": role}
    return call("POST", f"{_tenant(tenant_id)}/members", Record, json=sent, idempotent=True)


def mint_token(
    tenant_id: str, user_id: str, *, ttl_seconds: int | None = None, env: str | None = None
) -> Call[Token]:
    """A token for a member (tenant admins); `env` pins it to one environment."""
    sent = present(user_id=user_id, ttl_seconds=ttl_seconds, env=env)
    return call("POST", f"{_tenant(tenant_id)}/tokens", Token, json=sent, idempotent=True)


def set_route(
    resource_kind: str,
    tenant_id: str,
    env: str,
    backend_type: str,
    *,
    project_id: str | None = None,
    config: Mapping[str, Any] | None = None,
    secret_refs: Mapping[str, str] | None = None,
    tier: str | None = None,
    cost_notes: str | None = None,
    switch_rationale: str | None = None,
) -> Call[Record]:
    """Create or replace a route (system admins); a change of backend is a switch, audited."""
    sent = present(resource_kind=resource_kind, tenant_id=tenant_id, env=env, backend_type=backend_type,
                   project_id=project_id, config=config, secret_refs=secret_refs, tier=tier,
                   cost_notes=cost_notes, switch_rationale=switch_rationale)  # fmt: skip
    return call("PUT", "/v1/routes", Record, json=sent)


def list_routes(
    *, tenant_id: str | None = None, resource_kind: str | None = None, env: str | None = None
) -> Call[Record]:
    """`{"routes": […]}` this token may read, secrets redacted."""
    params = {"tenant_id": tenant_id, "resource_kind": resource_kind, "env": env}
    return call("GET", "/v1/routes", Record, params=params)


def delete_route(
    resource_kind: str,
    tenant_id: str,
    env: str,
    *,
    project_id: str | None = None,
    rationale: str | None = None,
) -> Call[Record]:
    params = {"resource_kind": resource_kind, "tenant_id": tenant_id, "env": env, "project_id": project_id,
              "rationale": rationale}  # fmt: skip
    return call("DELETE", "/v1/routes", Record, params=params)


def route_history(*, tenant_id: str | None = None, resource_kind: str | None = None) -> Call[Record]:
    """`{"changes": […]}`: every change of the routes this token may read, oldest first."""
    params = {"tenant_id": tenant_id, "resource_kind": resource_kind}
    return call("GET", "/v1/routes/history", Record, params=params)


def set_limits(
    tenant_id: str,
    *,
    classes: Mapping[str, Mapping[str, int]] | None = None,
    projects: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
    users: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
    on_unavailable: Mapping[str, Literal["open", "closed"]] | None = None,
) -> Call[Record]:
    """Replace a tenant's rate limits (system admins): per route class (`reads`, `writes`, `sse`,
    `analytics`) `{"limit", "window_seconds"}`, overrides per project and user, and what to do
    per class while the limiter's Redis is unreachable. A PUT: what is left out is not limited."""
    sent = present(classes=classes, projects=projects, users=users, on_unavailable=on_unavailable)
    return call("PUT", f"{_tenant(tenant_id)}/limits", Record, json=sent)


def get_limits(tenant_id: str) -> Call[Record]:
    """A tenant's rate limits, with every route class's `on_unavailable` rule spelled out."""
    return call("GET", f"{_tenant(tenant_id)}/limits", Record)


def erase_user_data(tenant_id: str, user_id: str) -> Call[Record]:
    """Erase a user's personal data (tenant admins, system admins): their data key is destroyed,
    and every personal field sealed under it reads `"[erased]"` from then on. Idempotent:
    `{"tenant_id", "user_id", "erased": true, "position"}`."""
    return call("DELETE", f"{_tenant(tenant_id)}/users/{segment(user_id)}/data", Record, idempotent=True)


def diagnostics(*, tenant_id: str | None = None, env: str | None = None) -> Call[Record]:
    """Per tenant, project and resource kind: the route, its status and round trip."""
    return call("GET", "/v1/diagnostics", Record, params={"tenant_id": tenant_id, "env": env})


def projections(*, tenant_id: str | None = None, name: str | None = None) -> Call[Record]:
    """`{"projections": […]}`: each running view's generation, position, head, lag and rebuild."""
    return call("GET", "/v1/projections", Record, params={"tenant_id": tenant_id, "name": name})


def rebuild_projection(
    name: str,
    *,
    tenant_id: str | None = None,
    project_id: str | None = None,
    env: str | None = None,
    wait: bool = False,
    from_: Literal["snapshot", "start"] | None = None,
) -> Call[Record]:
    """Rebuild a view beside the serving one, then swap it in; `wait`: answer once swapped in.
    `from_`: `snapshot` (the server's default) starts from the partition's snapshot when one is
    valid, `start` from position 0."""
    sent = present(tenant_id=tenant_id, project_id=project_id, env=env)
    params = {"wait": "true"} if wait else {}
    if from_ is not None:
        params["from"] = from_
    return call("POST", f"/v1/projections/{segment(name)}/rebuild", Record, json=sent, params=params)


def snapshot_projection(
    name: str,
    *,
    tenant_id: str | None = None,
    project_id: str | None = None,
    env: str | None = None,
    wait: bool = False,
) -> Call[Record]:
    """`{"snapshots": […]}`: snapshot each matching partition's serving view, which later
    rebuilds start from; `wait`: answer once taken (partition, position, documents)."""
    sent = present(tenant_id=tenant_id, project_id=project_id, env=env)
    params = {"wait": "true"} if wait else {}
    return call("POST", f"/v1/projections/{segment(name)}/snapshots", Record, json=sent, params=params)


def _tenant(tenant_id: str) -> str:
    return f"/v1/tenants/{segment(tenant_id)}"
