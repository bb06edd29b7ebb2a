"""`GET /v1/diagnostics`: per tenant, project and resource kind, where data goes and whether it can."""

from __future__ import annotations

import time
from typing import Annotated, Literal

import anyio
import msgspec
from litestar import get
from litestar.params import QueryParameter

from app.backends import EVENT_SPINE, OBJECT_STORE, RATE_LIMIT
from app.http.services import CallDep, Services
from domain.backend_url import Backend
from domain.circuit_breaker import BreakerState
from domain.context import RequestContext
from domain.control_plane import require_admin
from domain.errors import ForbiddenRoute, MissingRoute, SpineError
from domain.identifiers import IDENTIFIER_PATTERN
from domain.partition import SYSTEM_TENANT, Partition, normalize_env
from domain.routing import REQUIRED_KINDS, RESOURCE_KINDS, WILDCARD, missing_platform_defaults, resolve
from domain.views import space_of

Status = Literal["ok", "missing", "forbidden", "unreachable"]
_PARALLEL_PROBES = 16


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
    # The backend's circuit breaker as the probe left it (cloud backends only): while `open`, calls
    # are refused at once for `retry_after_seconds`, then one probe goes through.
    breaker: BreakerState | None = None
    retry_after_seconds: float | None = None
    # In lab, a kind without a route is served by the embedded store: `missing`, but a warning
    # (the deployment works), not a failure like a missing route of a saas tenant.
    lab_fallback: bool = False
    # A kind added after the first release (feature flags, KPIs…) without a route: `missing`, and
    # requests to it are refused, but a deployment that does not use it is healthy (`REQUIRED_KINDS`).
    optional: bool = False


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
        str | None,
        QueryParameter(description="one tenant (system admins: default all)", pattern=IDENTIFIER_PATTERN),
    ] = None,
    env: Annotated[
        str | None, QueryParameter(description="default: the deployment's env", pattern=IDENTIFIER_PATTERN)
    ] = None,
) -> Diagnostics:
    services, ctx = call.services, call.ctx
    settings = services.settings
    wanted_env = normalize_env(env or settings.default_env)
    missing = missing_platform_defaults(services.control.projector.registry, wanted_env)
    wanted = [
        (tenant, project, kind)
        for tenant in tenants_in_scope(services, ctx, tenant_id)
        for project in _projects(services, tenant)
        for kind in RESOURCE_KINDS
    ]
    # Probed side by side, each for at most `ready_timeout_seconds`: one unreachable backend costs
    # the answer one timeout, not one per kind and project (an open breaker costs nothing).
    found: dict[int, Check] = {}
    limiter = anyio.CapacityLimiter(_PARALLEL_PROBES)

    async def check(index: int, tenant: str, project: str, kind: str) -> None:
        async with limiter:
            found[index] = await _check(services, tenant, wanted_env, project, kind)

    async with anyio.create_task_group() as probes:
        for index, (tenant, project, kind) in enumerate(wanted):
            probes.start_soon(check, index, tenant, project, kind)
    checks = [found[index] for index in range(len(wanted))]
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


_LAB_FALLBACKS = {
    RATE_LIMIT: "lab: no rate limit applies",
    OBJECT_STORE: "lab falls back to the filesystem store under the data directory",
}


async def _check(services: Services, tenant: str, env: str, project: str, kind: str) -> Check:
    def made(status: Status, backend: str | None, *, warning: str | None = None, error_code: str | None = None,
             round_trip_ms: float | None = None, lab_fallback: bool = False) -> Check:  # fmt: skip
        return Check(
            tenant_id=tenant, env=env, project_id=project, resource_kind=kind, backend_type=backend,
            status=status, round_trip_ms=round_trip_ms, warnings=[warning] if warning else [], error_code=error_code,
            lab_fallback=lab_fallback,
        )  # fmt: skip

    mode = services.control.state.tenant(tenant).mode
    try:
        resolution = resolve(services.control.projector.registry, kind, tenant, env, project, mode)
    except ForbiddenRoute as exc:
        return made("forbidden", exc.backend, error_code=exc.error_code)
    except MissingRoute as exc:
        check = made("missing", None, error_code=exc.error_code)
        return check if kind in REQUIRED_KINDS else msgspec.structs.replace(check, optional=True)
    route = resolution.route
    if route is None:  # lab: the embedded store serves it (rate limits: none apply), and says so
        fallback = _LAB_FALLBACKS.get(kind, "lab falls back to the embedded store")
        return made("missing", None, warning=fallback, error_code=resolution.warning, lab_fallback=True)
    backend = Backend(backend_type=route.backend_type, config=route.config)
    partition = Partition(tenant_id=tenant, env=env, project_id=project if project != WILDCARD else "_")
    timeout = services.settings.ready_timeout_seconds
    failure: SpineError | None = None
    started = time.perf_counter()
    with anyio.move_on_after(timeout) as waited:
        try:
            await _probe(services, backend, kind, partition)
        except SpineError as exc:  # a probe's failure is this check's answer, not the request's
            failure = exc
    elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
    if failure is not None:
        check = made(
            "unreachable", route.backend_type, warning=failure.message, error_code=failure.error_code
        )
    elif waited.cancelled_caught:
        check = made("unreachable", route.backend_type, warning=f"no answer within {timeout:g}s",
                     error_code=f"{kind}.backend_unavailable")  # fmt: skip
    else:
        check = made("ok", route.backend_type, round_trip_ms=elapsed_ms)
    breaker = services.backends.breaker(backend, views=kind != EVENT_SPINE, kind=kind)
    if breaker is None:
        return check
    return msgspec.structs.replace(
        check, breaker=breaker.state, retry_after_seconds=breaker.retry_after_seconds
    )


async def _probe(services: Services, backend: Backend, kind: str, partition: Partition) -> None:
    """One read, through the backend's breaker: the log's head, a view store's checkpoint, or the
    limiter's and object store's own probe (which change nothing)."""
    if kind == EVENT_SPINE:
        await (await services.backends.spine(backend)).head(partition)
    elif kind == RATE_LIMIT:
        await (await services.backends.rate_limiter(backend)).probe()
    elif kind == OBJECT_STORE:
        await (await services.backends.objects(backend)).probe()
    else:
        store = await services.backends.views(backend, kind)
        await store.checkpoint(space_of(partition.key, f"diagnostics-{kind}", 0))
