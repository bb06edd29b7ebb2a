"""The identity guard: one function builds every request's `RequestContext`, for every route.

It is installed on the whole app, so a route is guarded unless it says `opt={"public": True}`.
Routes choose how much context they need with `opt={"context": ...}`:
- `"data"` (the default): token, membership, project and surface (and app when `requires_app`);
- `"principal"`: token, membership and headers only (control-plane routes, which authorize by
  role, and whose bodies name the records they act on).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from spine.adapters.jwt_tokens import TokenService
from spine.app.audit import AUDIT_PROJECT, record_audit
from spine.app.settings import Settings
from spine.domain.context import RequestContext
from spine.domain.errors import (
    IdentityOverride,
    InvalidContext,
    MissingContext,
    MissingToken,
    NotMember,
    UnknownContext,
)
from spine.domain.identity import Principal, SentIdentity, check_claims, effective_env
from spine.domain.partition import Identifier
from spine.domain.ports import EventSpine
from spine.projections.control_plane import ControlPlaneProjector

log = logging.getLogger(__name__)

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _PayloadIdentity(msgspec.Struct):
    """Identity fields of a JSON body, whatever their type; every other field is skipped."""

    tenant_id: Any = None
    user_id: Any = None
    mode: Any = None
    env: Any = None
    project_id: Any = None
    surface_id: Any = None
    app_id: Any = None


_payload_decoder = msgspec.json.Decoder(_PayloadIdentity)


class IdentityService:
    def __init__(
        self, tokens: TokenService, control: ControlPlaneProjector, spine: EventSpine, settings: Settings
    ) -> None:
        self.tokens = tokens
        self._control = control
        self._spine = spine
        self._settings = settings

    async def principal(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
        scheme, _, token = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingToken("send `Authorization: Bearer <token>`")
        return await self.tokens.verify(token.strip())

    async def context(
        self, connection: ASGIConnection[Any, Any, Any, Any], opt: dict[str, Any]
    ) -> RequestContext:
        principal = await self.principal(connection)
        control = self._control.state
        if control.role_of(principal.tenant_id, principal.user_id) is None:
            await self._control.catch_up()  # a membership written a moment ago, maybe elsewhere
        role = control.role_of(principal.tenant_id, principal.user_id)
        tenant = control.tenants.get(principal.tenant_id)
        if role is None or tenant is None:
            raise NotMember(f"user {principal.user_id!r} is not a member of tenant {principal.tenant_id!r}")
        headers = connection.headers
        sent = SentIdentity(
            tenant_id=headers.get("x-tenant-id"),
            user_id=headers.get("x-user-id"),
            mode=headers.get("x-mode"),
            env=headers.get("x-env"),
            project_id=headers.get("x-project-id"),
            surface_id=headers.get("x-surface-id"),
            app_id=headers.get("x-app-id"),
        )
        env = _valid(effective_env(principal, sent, self._settings.default_env), "X-Env")
        data_route = opt.get("context", "data") == "data"
        # In a control-plane body, `tenant_id` or `user_id` names what the command acts on, not the caller.
        payload = await _payload_identity(connection) if data_route else SentIdentity()
        try:
            check_claims(principal, tenant.mode, env, sent, payload)
        except IdentityOverride as exc:
            await self._audit_violation(principal, env, exc, connection)
            raise
        context = RequestContext(
            tenant_id=principal.tenant_id,
            env=env,
            project_id=AUDIT_PROJECT,
            mode=tenant.mode,
            user_id=principal.user_id,
            request_id=connection.scope["state"].get("request_id"),
            roles=frozenset({role}),
        )
        if not data_route:
            return context
        project_id = await self._known("project", principal.tenant_id, sent.project_id, "X-Project-Id")
        surface_id = await self._known("surface", principal.tenant_id, sent.surface_id, "X-Surface-Id")
        app_id = None
        if sent.app_id is not None or opt.get("requires_app"):
            app_id = await self._known("app", principal.tenant_id, sent.app_id, "X-App-Id")
        return msgspec.structs.replace(context, project_id=project_id, surface_id=surface_id, app_id=app_id)

    async def _known(self, kind: str, tenant_id: str, value: str | None, header: str) -> str:
        if not value:
            raise MissingContext(header)
        _valid(value, header)

        def known() -> bool:
            state = self._control.state
            records: dict[str, Any] = {
                "project": state.projects,
                "surface": state.surfaces,
                "app": state.apps,
            }
            return (tenant_id, value) in records[kind]

        if not known():
            await self._control.catch_up()
            if not known():
                raise UnknownContext(kind, value)
        return value

    async def _audit_violation(
        self,
        principal: Principal,
        env: str,
        exc: IdentityOverride,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        request_id = connection.scope["state"].get("request_id")
        data = {
            "field": exc.field,
            "source": exc.source,
            "sent": exc.sent,
            "actual": exc.actual,
            "user_id": principal.user_id,
            "request_id": request_id,
            "method": connection.scope.get("method"),
            "path": connection.scope["path"],
            "project_id": _named_project(connection),
        }
        await record_audit(
            self._spine,
            tenant_id=principal.tenant_id,
            env=env,
            stream="audit:auth",
            event_type="auth.violation",
            data=data,
            user_id=principal.user_id,
            request_id=request_id,
        )
        log.warning(
            "identity override rejected", extra={k: v for k, v in data.items() if k not in {"sent", "actual"}}
        )


async def identity_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Installed on the app: every route that is not public gets a verified `RequestContext`."""
    path = connection.scope["path"]
    # OPTIONS: Litestar's automatic handlers answer `Allow` only, and CORS preflights carry no token.
    if handler.opt.get("public") or path == "/schema" or path.startswith("/schema/"):
        return
    if connection.scope.get("method") == "OPTIONS":
        return
    identity: IdentityService = connection.app.state.services.identity
    connection.state.ctx = await identity.context(connection, handler.opt)


async def _payload_identity(connection: ASGIConnection[Any, Any, Any, Any]) -> SentIdentity:
    if connection.scope.get("method") not in _BODY_METHODS:
        return SentIdentity()
    body: bytes = await connection.body()  # type: ignore[attr-defined]  # cached: the handler reads it again
    try:
        fields = _payload_decoder.decode(body)
    except msgspec.DecodeError:  # not a JSON object: the handler answers 422
        return SentIdentity()
    return SentIdentity(
        **{k: None if v is None else str(v) for k, v in msgspec.structs.asdict(fields).items()}
    )


def _named_project(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The project a refused request named (its audit shows the violation), if a valid id."""
    sent = connection.headers.get("x-project-id")
    try:
        return None if sent is None else msgspec.convert(sent, type=Identifier)
    except msgspec.ValidationError:
        return None


def _valid(value: str, header: str) -> str:
    try:
        return msgspec.convert(value, type=Identifier)
    except msgspec.ValidationError as exc:
        raise InvalidContext(header) from exc
