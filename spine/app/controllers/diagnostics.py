"""`GET /v1/diagnostics`: per tenant, project and resource kind, where data goes and whether it can."""

from __future__ import annotations

import time
from typing import Annotated, Literal

import msgspec
from litestar import get
from litestar.params import QueryParameter

from spine.app.services import CallDep, Services
from spine.domain.context import RequestContext
from spine.domain.control_plane import require_admin
from spine.domain.errors import BackendUnavailable, ForbiddenRoute, MissingRoute
from spine.domain.partition import SYSTEM_TENANT, Partition, normalize_env
from spine.domain.routing import RESOURCE_KINDS, WILDCARD, missing_platform_defaults, resolve

Status = Literal["ok", "missing", "forbidden", "unreachable"]


class Check(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    env: str
    project_id: str
    resource_kind: str
    backend_type: str | None
    status: Status
    round_trip_ms: float | None = None
    warnings: list[str] = msgspec.field(default_factory=list)
    error_code: str | None = None


class Diagnostics(msgspec.Struct, frozen=True, kw_only=True):
    deployment: str
    env: str
    ready: bool
    missing_platform_routes: list[str]
    checks: list[Check]


@get(
    "/v1/diagnostics",
    opt={"context": "principal"},
    tags=["routing"],
    summary="Routes, status and round trips",
)
async def diagnostics(
    call: CallDep,
    tenant_id: Annotated[
        str | None, QueryParameter(description="one tenant (system admins: default all)")
    ] = None,
    env: Annotated[str | None, QueryParameter(description="default: the deployment's env")] = None,
) -> Diagnostics:
    services, ctx = call.services, call.ctx
    settings = services.settings
    wanted_env = normalize_env(env or settings.default_env)
    missing = missing_platform_defaults(services.control.projector.registry, wanted_env)
    checks = [
        await _check(services, tenant, wanted_env, project, kind)
        for tenant in tenants_in_scope(services, ctx, tenant_id)
        for project in _projects(services, tenant)
        for kind in RESOURCE_KINDS
    ]
    return Diagnostics(
        deployment=settings.deployment,
        env=wanted_env,
        ready=settings.deployment == "lab" or not missing,
        missing_platform_routes=missing,
        checks=checks,
    )


def tenants_in_scope(services: Services, ctx: RequestContext, wanted: str | None) -> list[str]:
    """The tenants an operator may look at: one (or every one, for system admins), or 403."""
    state = services.control.state
    assert ctx.user_id is not None
    if ctx.tenant_id == SYSTEM_TENANT and state.is_system_admin(ctx.user_id):
        candidates = [wanted] if wanted else sorted(t for t in state.tenants if t != SYSTEM_TENANT)
        for tenant in candidates:
            state.tenant(tenant)  # 404 for an unknown one
        return candidates
    require_admin(state, ctx.tenant_id, ctx.user_id, wanted or ctx.tenant_id)
    return [ctx.tenant_id]


def _projects(services: Services, tenant: str) -> list[str]:
    return [p.project_id for p in services.control.state.projects_of(tenant)] or [WILDCARD]


async def _check(services: Services, tenant: str, env: str, project: str, kind: str) -> Check:
    def made(status: Status, backend: str | None, *, warning: str | None = None, error_code: str | None = None,
             round_trip_ms: float | None = None) -> Check:  # fmt: skip
        return Check(
            tenant_id=tenant, env=env, project_id=project, resource_kind=kind, backend_type=backend,
            status=status, round_trip_ms=round_trip_ms, warnings=[warning] if warning else [], error_code=error_code,
        )  # fmt: skip

    mode = services.control.state.tenant(tenant).mode
    try:
        resolution = resolve(services.control.projector.registry, kind, tenant, env, project, mode)
    except ForbiddenRoute as exc:
        return made("forbidden", exc.backend, error_code=exc.error_code)
    except MissingRoute as exc:
        return made("missing", None, error_code=exc.error_code)
    route = resolution.route
    if route is None:  # lab: the embedded store serves it, and says so
        return made(
            "missing", None, warning="lab falls back to the embedded store", error_code=resolution.warning
        )
    if kind != "event_spine":
        return made("ok", route.backend_type, warning=f"not probed: this build has no {kind} adapter yet")
    started = time.perf_counter()
    try:
        spine = await services.spines.open(route)
        await spine.head(
            Partition(tenant_id=tenant, env=env, project_id=project if project != WILDCARD else "_")
        )
    except BackendUnavailable as exc:
        return made("unreachable", route.backend_type, warning=exc.message, error_code=exc.error_code)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
    return made("ok", route.backend_type, round_trip_ms=elapsed_ms)
