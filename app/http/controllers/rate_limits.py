"""A tenant's rate limits (control-plane data): `PUT/GET /v1/tenants/{tenant_id}/limits`, and
the object store's size limits, which the same record holds (`objects`).

System admins set them (they protect the platform from a tenant, so a tenant does not raise its
own); the tenant's admins may read them. These routes are never rate limited themselves.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, get, put
from litestar.params import JSONBody, PathParameter

from app.http.services import CallDep
from app.usecases.control_plane import acting_user, system_meta
from domain.control_plane import decide_limits, require_admin, require_system_admin
from domain.identifiers import IDENTIFIER_PATTERN
from domain.rate_limits import (
    ROUTE_CLASSES,
    Classes,
    LimitsSet,
    ObjectLimits,
    TenantLimits,
    Unavailable,
)

TenantId = Annotated[str, PathParameter(description="tenant id", pattern=IDENTIFIER_PATTERN)]


class LimitsBody(TenantLimits, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole of a tenant's limits: what is left out is not limited (a PUT replaces)."""


class LimitsView(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's limits, with the `on_unavailable` rule of every route class spelled out."""

    tenant_id: str
    classes: Classes
    projects: dict[str, Classes]
    users: dict[str, Classes]
    on_unavailable: dict[str, Unavailable]
    objects: ObjectLimits | None
    position: int


class RateLimitsController(Controller):
    path = "/v1/tenants"
    tags = ["control plane"]
    opt = {"context": "principal", "rate_limit": False}

    @put("/{tenant_id:str}/limits", summary="Replace a tenant's rate limits (system admins)")
    async def put_limits(
        self, tenant_id: TenantId, data: JSONBody[LimitsBody], call: CallDep
    ) -> Response[LimitsView]:
        ctx, services = call.ctx, call.services
        require_system_admin(services.control.state, ctx.tenant_id, acting_user(ctx))
        record = LimitsSet(tenant_id=tenant_id, **msgspec.structs.asdict(data))
        await services.control.execute(lambda state: decide_limits(state, record), system_meta(ctx.env, ctx))
        view = _view(services.control.state.limits.get(tenant_id), tenant_id, services.control.state.position)
        return Response(view, status_code=200, headers={"X-Spine-Position": str(view.position)})

    @get("/{tenant_id:str}/limits", summary="A tenant's rate limits (tenant admins)")
    async def get_limits(self, tenant_id: TenantId, call: CallDep) -> LimitsView:
        ctx, services = call.ctx, call.services
        state = services.control.state
        require_admin(state, ctx.tenant_id, acting_user(ctx), tenant_id)
        state.tenant(tenant_id)
        return _view(state.limits.get(tenant_id), tenant_id, state.position)


def _view(limits: LimitsSet | None, tenant_id: str, position: int) -> LimitsView:
    limits = limits or LimitsSet(tenant_id=tenant_id)
    return LimitsView(
        tenant_id=tenant_id,
        classes=limits.classes,
        projects=dict(limits.projects),
        users=dict(limits.users),
        on_unavailable={c: "open" if limits.fails_open(c) else "closed" for c in ROUTE_CLASSES},
        objects=limits.objects,
        position=position,
    )
