"""`/v1/routes`: the routing registry, written by system admins and read by tenant admins."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, put
from litestar.params import JSONBody, QueryParameter

from app.backends import secret_files
from app.http.services import CallDep, Services
from app.usecases.audit import record_audit
from app.usecases.control_plane import acting_user, system_meta
from domain.context import RequestContext
from domain.control_plane import ControlPlane, Decision, require_admin, require_system_admin
from domain.errors import InvalidRequest
from domain.identifiers import IDENTIFIER_PATTERN, Env
from domain.partition import SYSTEM_TENANT, normalize_env
from domain.routing import (
    SCOPE_PATTERN,
    WILDCARD,
    BackendType,
    Registry,
    ResourceKind,
    Route,
    RouteChange,
    RouteDeleted,
    Scope,
    decide_route,
    decide_route_delete,
)


class RouteIn(msgspec.Struct, frozen=True, kw_only=True):
    resource_kind: ResourceKind
    tenant_id: Scope
    env: Env  # checked here: a malformed one is a 422 naming it, not a failed conversion (500) below
    project_id: Scope = WILDCARD
    backend_type: BackendType
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    secret_refs: dict[str, str] = msgspec.field(default_factory=dict)
    tier: str | None = None
    cost_notes: str | None = None
    switch_rationale: str | None = None
    # The route's `version` as it was read (0: no route yet). Given, a change made since is refused
    # (409 `routing.version_conflict`) rather than replaced: two operators switching one route at
    # once cannot both win unseen. Left out, the write replaces whatever is there.
    expected_version: Annotated[int, msgspec.Meta(ge=0)] | None = None


class ListedRoute(Route, frozen=True, kw_only=True):
    """A route as answers show it: with its `version`, what a change sends back as `expected_version`."""

    version: int


class RoutesAnswer(msgspec.Struct, frozen=True, kw_only=True):
    routes: list[ListedRoute]


class HistoryAnswer(msgspec.Struct, frozen=True, kw_only=True):
    changes: list[RouteChange]


TenantFilter = Annotated[
    str | None, QueryParameter(description="a tenant id, or * for platform defaults", pattern=SCOPE_PATTERN)
]
KindFilter = Annotated[str | None, QueryParameter(description="a resource kind")]
EnvFilter = Annotated[str | None, QueryParameter(description="an environment", pattern=IDENTIFIER_PATTERN)]


class RoutesController(Controller):
    path = "/v1/routes"
    tags = ["routing"]
    opt = {"context": "principal"}

    @put("/", summary="Create or change a route (system admins); a change of backend is a switch")
    async def set_route(self, data: JSONBody[RouteIn], call: CallDep) -> Response[dict[str, Any]]:
        ctx, services = call.ctx, call.services
        control = services.control
        require_system_admin(control.state, ctx.tenant_id, acting_user(ctx))
        fields = {**msgspec.to_builtins(data), "env": normalize_env(data.env)}
        fields.pop("expected_version", None)
        route = msgspec.convert(fields, Route)
        if route.backend_type == "sqlite":
            _inside_data_dir(services, str(route.config["path"]) if "path" in route.config else "")
        mode = None if route.tenant_id == WILDCARD else control.state.tenant(route.tenant_id).mode
        replaced: list[Route | None] = []

        def decided(_: ControlPlane) -> list[Decision]:
            decision, previous = decide_route(
                control.projector.registry,
                route,
                mode=mode,
                now=datetime.now(UTC),
                files=secret_files(services.settings),
                expected=data.expected_version,
            )
            replaced[:] = [previous]
            return [decision]

        position = await control.execute(decided, system_meta(ctx.env, ctx))
        stored = control.projector.registry.routes[route.key]
        previous = replaced[0] if replaced else None
        switched = False
        if previous is not None and not previous.same_backend(stored):
            switched = True
            await _audit_switch(services, ctx, previous, stored)
        body = {
            **msgspec.to_builtins(_listed(control.projector.registry, stored)),
            "position": position,
            "switched": switched,
        }
        return Response(body, headers={"X-Spine-Position": str(position)})

    @get("/", summary="Routes (system admins: all; tenant admins: their tenant's and the platform defaults)")
    async def list_routes(
        self,
        call: CallDep,
        tenant_id: TenantFilter = None,
        resource_kind: KindFilter = None,
        env: EnvFilter = None,
    ) -> RoutesAnswer:
        visible = _visible_tenants(call.services, call.ctx, tenant_id)
        routes = [
            route
            for route in call.services.control.projector.registry.routes.values()
            if route.tenant_id in visible
            and (tenant_id is None or route.tenant_id == tenant_id)
            and (resource_kind is None or route.resource_kind == resource_kind)
            and (env is None or route.env == normalize_env(env))
        ]
        registry = call.services.control.projector.registry
        return RoutesAnswer(
            routes=[_listed(registry, route) for route in sorted(routes, key=lambda r: r.key)]
        )

    @delete("/", status_code=200, summary="Delete a route (system admins)")
    async def delete_route(
        self,
        call: CallDep,
        resource_kind: Annotated[ResourceKind, QueryParameter()],
        tenant_id: Annotated[str, QueryParameter(description="a tenant id, or *", pattern=SCOPE_PATTERN)],
        env: Annotated[str, QueryParameter(pattern=IDENTIFIER_PATTERN)],
        project_id: Annotated[
            str, QueryParameter(description="a project id, or *", pattern=SCOPE_PATTERN)
        ] = WILDCARD,
        rationale: Annotated[str | None, QueryParameter()] = None,
    ) -> Response[dict[str, Any]]:
        ctx, control = call.ctx, call.services.control
        require_system_admin(control.state, ctx.tenant_id, acting_user(ctx))
        deleted = RouteDeleted(
            resource_kind=resource_kind,
            tenant_id=tenant_id,
            env=normalize_env(env),
            project_id=project_id,
            rationale=rationale,
        )
        position = await control.execute(
            lambda _: [decide_route_delete(control.projector.registry, deleted)], system_meta(ctx.env, ctx)
        )
        body = {"status": "deleted", "position": position, **msgspec.to_builtins(deleted)}
        return Response(body, headers={"X-Spine-Position": str(position)})

    @get("/history", summary="Every change of the routes one may read, oldest first")
    async def history(
        self, call: CallDep, tenant_id: TenantFilter = None, resource_kind: KindFilter = None
    ) -> HistoryAnswer:
        visible = _visible_tenants(call.services, call.ctx, tenant_id)
        changes = [
            change.redacted()
            for change in call.services.control.projector.registry.history
            if change.key[1] in visible
            and (tenant_id is None or change.key[1] == tenant_id)
            and (resource_kind is None or change.key[0] == resource_kind)
        ]
        return HistoryAnswer(changes=changes)


def _listed(registry: Registry, route: Route) -> ListedRoute:
    return ListedRoute(**msgspec.structs.asdict(route.redacted()), version=registry.version_of(route.key))


def _inside_data_dir(services: Services, path: str) -> None:
    """SQLite routes name files under the data directory: a route is data, not a way to reach
    arbitrary files of the host."""
    data_dir = services.settings.data_dir.resolve()
    if path and not (data_dir / path).resolve().is_relative_to(data_dir):
        raise InvalidRequest(f"a sqlite route's path must stay inside the data directory, not {path!r}")


def _visible_tenants(services: Services, ctx: RequestContext, wanted: str | None) -> set[str]:
    """System admins see every route; a tenant admin sees their tenant's and the platform's."""
    state = services.control.state
    if ctx.tenant_id == SYSTEM_TENANT and state.is_system_admin(acting_user(ctx)):
        return {route.tenant_id for route in services.control.projector.registry.routes.values()} | {
            change.key[1] for change in services.control.projector.registry.history
        }
    require_admin(state, ctx.tenant_id, acting_user(ctx), ctx.tenant_id)
    if wanted not in (None, WILDCARD, ctx.tenant_id):
        require_admin(state, ctx.tenant_id, acting_user(ctx), wanted)  # raises: not their tenant
    return {ctx.tenant_id, WILDCARD}


async def _audit_switch(services: Services, ctx: RequestContext, old: Route, new: Route) -> None:
    """`route.backend_switched` in the audit trail of the tenant the route belongs to."""
    tenant = SYSTEM_TENANT if new.tenant_id == WILDCARD else new.tenant_id
    data = {
        "resource_kind": new.resource_kind,
        "route": "/".join(new.key),
        "project_id": new.project_id,  # `*`: tenant-wide, in the audit of every project
        "old_backend": old.backend_type,
        "new_backend": new.backend_type,
        "rationale": new.switch_rationale,
        "actor": ctx.user_id,
        "request_id": ctx.request_id,
    }
    await record_audit(
        services.spine,
        tenant_id=tenant,
        env=new.env,
        stream="audit:routing",
        event_type="route.backend_switched",
        data=data,
        user_id=ctx.user_id,
        request_id=ctx.request_id,
    )
