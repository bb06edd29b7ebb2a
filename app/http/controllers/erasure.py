"""`DELETE /v1/tenants/{tenant_id}/users/{user_id}/data`: erase a user's personal data by
destroying their data key (`app.usecases.erasure`). Tenant admins of the tenant, and system
admins, may; the caller's identity comes from the token alone."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete
from litestar.params import PathParameter

from app.http.services import CallDep
from app.usecases.control_plane import acting_user
from app.usecases.erasure import Erased, erase_user_data
from domain.control_plane import UserDataErased, require_admin
from domain.identifiers import IDENTIFIER_PATTERN

TenantId = Annotated[str, PathParameter(description="tenant id", pattern=IDENTIFIER_PATTERN)]
UserId = Annotated[
    str, PathParameter(description="the user whose personal data is erased", pattern=IDENTIFIER_PATTERN)
]


class ErasureController(Controller):
    path = "/v1/tenants"
    tags = ["control plane"]
    opt = {"context": "principal", "rate_limit": False}

    @delete(
        "/{tenant_id:str}/users/{user_id:str}/data",
        status_code=200,
        summary="Erase a user's personal data: their data key is destroyed (tenant admins)",
    )
    async def erase(self, tenant_id: TenantId, user_id: UserId, call: CallDep) -> Response[Erased]:
        ctx, services = call.ctx, call.services
        require_admin(services.control.state, ctx.tenant_id, acting_user(ctx), tenant_id)
        command = UserDataErased(tenant_id=tenant_id, user_id=user_id)
        erased = await erase_user_data(services.spines.keys, services.control, services.spine, ctx, command)
        return Response(erased, headers={"X-Spine-Position": str(erased.position)})
