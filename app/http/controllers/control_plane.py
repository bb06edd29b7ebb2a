"""Bootstrap, tenants, modes, projects, surfaces, apps (with their browser origins), members and
tokens: the control plane API."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, PathParameter

from app.http.preconditions import IfMatch, precondition
from app.http.services import CallDep, Services, ServicesDep
from app.usecases.control_plane import acting_user, system_meta
from domain.context import RequestContext
from domain.control_plane import (
    App,
    AppCreated,
    AppUpdated,
    ControlPlane,
    Decision,
    MemberSet,
    ModeDefined,
    ProjectCreated,
    Role,
    SurfaceCreated,
    TenantCreated,
    decide_app,
    decide_app_put,
    decide_bootstrap,
    decide_member,
    decide_project,
    decide_surface,
    decide_tenant,
    first_admin,
    require_admin,
    require_system_admin,
)
from domain.errors import BootstrapRefused, MintingDisabled, NotFound
from domain.identifiers import IDENTIFIER_PATTERN
from domain.origins import Origins
from domain.partition import SYSTEM_TENANT, Identifier, normalize_env

R = TypeVar("R", ProjectCreated, SurfaceCreated, AppCreated, MemberSet)
TenantId = Annotated[str, PathParameter(description="tenant id", pattern=IDENTIFIER_PATTERN)]
AppId = Annotated[str, PathParameter(description="app id", pattern=IDENTIFIER_PATTERN)]


class BootstrapBody(msgspec.Struct, frozen=True, kw_only=True):
    user_id: Identifier = "admin"


class BootstrapAnswer(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    user_id: str
    token: str


class NewTenant(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: Identifier
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    mode: Identifier = "saas"


class Named(msgspec.Struct, frozen=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class NewProject(Named, frozen=True, kw_only=True):
    project_id: Identifier


class NewSurface(Named, frozen=True, kw_only=True):
    surface_id: Identifier


class NewApp(Named, frozen=True, kw_only=True):
    app_id: Identifier


class AppBody(Named, frozen=True, kw_only=True):
    """The whole app: origins left out are none (a PUT replaces)."""

    origins: Origins = []


class NewMember(msgspec.Struct, frozen=True, kw_only=True):
    user_id: Identifier
    role: Role


class NewToken(msgspec.Struct, frozen=True, kw_only=True):
    user_id: Identifier
    ttl_seconds: Annotated[int, msgspec.Meta(ge=60)] | None = None
    env: Identifier | None = None  # pins the token to one environment


class TokenAnswer(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    tenant_id: str
    user_id: str
    expires_at: datetime


class TenantView(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    name: str
    mode: str
    projects: list[ProjectCreated]
    surfaces: list[SurfaceCreated]
    apps: list[App]
    members: dict[str, str]


class TenantSummary(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    name: str
    mode: str
    projects: list[str]


class TenantsAnswer(msgspec.Struct, frozen=True, kw_only=True):
    tenants: list[TenantSummary]


def _created(record: msgspec.Struct, position: int) -> Response[dict[str, Any]]:
    body = {**msgspec.to_builtins(record), "position": position}
    return Response(body, status_code=201, headers={"X-Spine-Position": str(position)})


@post("/v1/auth/bootstrap", opt={"public": True}, status_code=200, tags=["control plane"])
async def bootstrap(
    request: Request[Any, Any, Any], services: ServicesDep, data: JSONBody[BootstrapBody | None] = None
) -> BootstrapAnswer:
    """Create `t_system` and its first admin (idempotent); answer an admin token. Needs `X-Bootstrap-Key`."""
    key = services.bootstrap_key
    if key is None:
        raise BootstrapRefused("bootstrap is disabled: no bootstrap key is configured")
    sent = request.headers.get("x-bootstrap-key", "")
    if not hmac.compare_digest(sent.encode(), key.encode()):
        raise BootstrapRefused("wrong or missing X-Bootstrap-Key")
    if not services.identity.tokens.can_mint:  # refuse before recording anything
        raise MintingDisabled("this deployment mints no tokens: configure SPINE_TOKEN_KEY to bootstrap")
    body = data or BootstrapBody()  # no body: the default admin
    env = services.settings.default_env
    await services.control.execute(
        lambda state: decide_bootstrap(state, body.user_id), system_meta(env, request_id=_rid(request))
    )
    admin = first_admin(services.control.state)
    assert admin is not None
    token = services.identity.tokens.mint(
        tenant_id=SYSTEM_TENANT, user_id=admin, ttl_seconds=services.settings.token_ttl_seconds
    )
    return BootstrapAnswer(tenant_id=SYSTEM_TENANT, user_id=admin, token=token)


class ModesController(Controller):
    path = "/v1/modes"
    tags = ["control plane"]
    opt = {"context": "principal"}

    @get("/", summary="The modes a tenant can have (system admins)")
    async def modes(self, call: CallDep) -> list[ModeDefined]:
        ctx, services = call.ctx, call.services
        state = services.control.state
        require_system_admin(state, ctx.tenant_id, acting_user(ctx))
        return sorted(state.modes.values(), key=lambda mode: mode.name)


class TenantsController(Controller):
    path = "/v1/tenants"
    tags = ["control plane"]
    opt = {"context": "principal"}

    @post("/", summary="Create a tenant (system admins)")
    async def create_tenant(self, data: JSONBody[NewTenant], call: CallDep) -> Response[dict[str, Any]]:
        ctx, services = call.ctx, call.services
        require_system_admin(services.control.state, ctx.tenant_id, acting_user(ctx))
        record = TenantCreated(tenant_id=data.tenant_id, name=data.name, mode=data.mode)
        position = await services.control.execute(
            lambda s: [decide_tenant(s, record)], system_meta(ctx.env, ctx)
        )
        return _created(record, position)

    @get("/", summary="The tenants one administers (system admins: every one; tenant admins: theirs)")
    async def list_tenants(self, call: CallDep) -> TenantsAnswer:
        """What an operator's console lists: the system admin's whole platform, `t_system` included,
        or a tenant admin's own tenant; a member administers none (403)."""
        ctx, state = call.ctx, call.services.control.state
        user = acting_user(ctx)
        if ctx.tenant_id == SYSTEM_TENANT and state.is_system_admin(user):
            tenant_ids = sorted(state.tenants)
        else:
            require_admin(state, ctx.tenant_id, user, ctx.tenant_id)
            tenant_ids = [ctx.tenant_id]
        return TenantsAnswer(
            tenants=[
                TenantSummary(
                    tenant_id=tenant.tenant_id,
                    name=tenant.name,
                    mode=tenant.mode,
                    projects=[project.project_id for project in state.projects_of(tenant.tenant_id)],
                )
                for tenant in (state.tenant(tenant_id) for tenant_id in tenant_ids)
            ]
        )

    @get("/{tenant_id:str}", summary="A tenant with its projects, surfaces, apps and members")
    async def read_tenant(self, tenant_id: TenantId, call: CallDep) -> TenantView:
        ctx, services = call.ctx, call.services
        state = services.control.state
        require_admin(state, ctx.tenant_id, acting_user(ctx), tenant_id)
        tenant = state.tenant(tenant_id)
        return TenantView(
            tenant_id=tenant.tenant_id,
            name=tenant.name,
            mode=tenant.mode,
            projects=state.projects_of(tenant_id),
            surfaces=state.surfaces_of(tenant_id),
            apps=state.apps_of(tenant_id),
            members=dict(state.members_of(tenant_id)),
        )

    @post("/{tenant_id:str}/projects", summary="Create a project (tenant admins)")
    async def create_project(
        self, tenant_id: TenantId, data: JSONBody[NewProject], call: CallDep
    ) -> Response[dict[str, Any]]:
        ctx, services = call.ctx, call.services
        record = ProjectCreated(tenant_id=tenant_id, project_id=data.project_id, name=data.name)
        return await _admin_write(services, ctx, tenant_id, record, decide_project)

    @post("/{tenant_id:str}/surfaces", summary="Create a surface (tenant admins)")
    async def create_surface(
        self, tenant_id: TenantId, data: JSONBody[NewSurface], call: CallDep
    ) -> Response[dict[str, Any]]:
        ctx, services = call.ctx, call.services
        record = SurfaceCreated(tenant_id=tenant_id, surface_id=data.surface_id, name=data.name)
        return await _admin_write(services, ctx, tenant_id, record, decide_surface)

    @post("/{tenant_id:str}/apps", summary="Create an app (tenant admins)")
    async def create_app(
        self, tenant_id: TenantId, data: JSONBody[NewApp], call: CallDep
    ) -> Response[dict[str, Any]]:
        ctx, services = call.ctx, call.services
        record = AppCreated(tenant_id=tenant_id, app_id=data.app_id, name=data.name)
        return await _admin_write(services, ctx, tenant_id, record, decide_app)

    @put(
        "/{tenant_id:str}/apps/{app_id:str}",
        summary="Create an app, or replace its name and the browser origins it allows (tenant admins)",
        responses={201: ResponseSpec(data_container=App, description="the app did not exist: created")},
    )
    async def put_app(
        self,
        tenant_id: TenantId,
        app_id: AppId,
        data: JSONBody[AppBody],
        call: CallDep,
        if_match: IfMatch = None,
    ) -> Response[App]:
        """201 when it creates the app, 200 when it replaces it (or it is so already); `ETag` is
        its version: send it back as `If-Match` so that a change made meanwhile is a 409."""
        ctx, services = call.ctx, call.services
        require_admin(services.control.state, ctx.tenant_id, acting_user(ctx), tenant_id)
        wanted = precondition(None, if_match)
        record = AppUpdated(tenant_id=tenant_id, app_id=app_id, name=data.name, origins=data.origins)
        created = False

        def decided(state: ControlPlane) -> list[Decision]:
            nonlocal created
            current = state.apps.get((tenant_id, app_id))
            created = current is None
            version = 0 if current is None else current.version
            expected = None if wanted is None else wanted.version_for(version, live=not created)
            return decide_app_put(state, record, expected)

        await services.control.execute(decided, system_meta(ctx.env, ctx))
        app = services.control.state.apps[(tenant_id, app_id)]
        headers = {"ETag": f'"{app.version}"', "X-Spine-Position": str(app.position)}
        return Response(app, status_code=201 if created else 200, headers=headers)

    @post("/{tenant_id:str}/members", summary="Add a member, or change a member's role (tenant admins)")
    async def set_member(
        self, tenant_id: TenantId, data: JSONBody[NewMember], call: CallDep
    ) -> Response[dict[str, Any]]:
        ctx, services = call.ctx, call.services
        record = MemberSet(tenant_id=tenant_id, user_id=data.user_id, role=data.role)
        return await _admin_write(services, ctx, tenant_id, record, decide_member)

    @post("/{tenant_id:str}/tokens", summary="Mint a token for a member (tenant admins)")
    async def mint_token(
        self, tenant_id: TenantId, data: JSONBody[NewToken], call: CallDep
    ) -> Response[TokenAnswer]:
        ctx, services = call.ctx, call.services
        state = services.control.state
        if state.role_of(tenant_id, data.user_id) is None:
            await services.control.projector.catch_up()  # a member added a moment ago, maybe elsewhere
        require_admin(state, ctx.tenant_id, acting_user(ctx), tenant_id)
        state.tenant(tenant_id)
        if state.role_of(tenant_id, data.user_id) is None:
            raise NotFound("member", data.user_id)
        settings = services.settings
        ttl = min(data.ttl_seconds or settings.token_ttl_seconds, settings.max_token_ttl_seconds)
        env = normalize_env(data.env) if data.env else None
        token = services.identity.tokens.mint(
            tenant_id=tenant_id, user_id=data.user_id, ttl_seconds=ttl, env=env
        )
        expires_at = datetime.now(UTC) + timedelta(seconds=ttl)
        answer = TokenAnswer(token=token, tenant_id=tenant_id, user_id=data.user_id, expires_at=expires_at)
        return Response(answer, status_code=201)


async def _admin_write(
    services: Services,
    ctx: RequestContext,
    tenant_id: str,
    record: R,
    decide: Callable[[ControlPlane, R], Decision],
) -> Response[dict[str, Any]]:
    require_admin(services.control.state, ctx.tenant_id, acting_user(ctx), tenant_id)

    def decided(state: ControlPlane) -> list[Decision]:
        return [decide(state, record)]

    position = await services.control.execute(decided, system_meta(ctx.env, ctx))
    return _created(record, position)


def _rid(request: Request[Any, Any, Any]) -> str | None:
    request_id: str | None = request.scope["state"].get("request_id")
    return request_id
