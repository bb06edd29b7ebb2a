"""The identity guard: one function builds every request's `RequestContext`, for every route.

It is installed on the whole app, so a route is guarded unless it says `opt={"public": True}`.
Routes choose how much context they need with `opt={"context": ...}`:
- `"data"` (the default): token, membership, project and surface (and app when `requires_app`);
- `"principal"`: token, membership and headers only (control-plane routes, which authorize by
  role, and whose bodies name the records they act on).
A route with `opt={"ticket": True}` (the event reads a page's `EventSource` opens) also accepts a
stream ticket in `?ticket=` instead of the token and the context headers: the context is the
ticket's, and the membership is checked as for a token. Every other route refuses a ticket.
A route with `opt={"raw_body": True}` (an object's bytes) streams its body itself: the guard never
reads it, so it holds no identity fields. A route with `opt={"query_identity": True}` (a GET that evaluates for its caller, like
`/v1/flags/evaluate`) holds identity fields in its query string to the rule of a body's: they may
only repeat the request's identity (403 `auth.identity_override`, audited, otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable
from datetime import datetime
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from adapters.jwt_tokens import TokenService
from adapters.stream_tickets import TicketSigner
from app.http.limits import admit
from app.settings import Settings
from app.usecases.audit import AUDIT_PROJECT, record_audit
from domain.context import RequestContext
from domain.control_plane import ControlPlane, Role, TenantCreated
from domain.errors import (
    DuplicateIdentity,
    IdentityOverride,
    InvalidContext,
    InvalidToken,
    MissingContext,
    MissingToken,
    NotMember,
    UnknownContext,
)
from domain.identifiers import matches
from domain.identity import (
    NOTHING_SENT,
    Principal,
    SentIdentity,
    check_claims,
    effective_env,
    stated_truth,
)
from domain.json_depth import check_depth
from domain.ports import EventSpine
from domain.stream_tickets import TICKET_ROUTES, StreamTicket, check_ticket_claims, check_unexpired
from projections.control_plane import ControlPlaneProjector

log = logging.getLogger(f"spine.{__name__}")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_HEADERS = {
    "tenant_id": "X-Tenant-Id",
    "user_id": "X-User-Id",
    "mode": "X-Mode",
    "env": "X-Env",
    "project_id": "X-Project-Id",
    "surface_id": "X-Surface-Id",
    "app_id": "X-App-Id",
}
_FIELD_OF = {header.lower().encode(): field for field, header in _HEADERS.items()}
_AUTHORIZATION = b"authorization"
_RECORDS: dict[str, Callable[[ControlPlane], Container[tuple[str, str]]]] = {
    "project": lambda state: state.projects,
    "surface": lambda state: state.surfaces,
    "app": lambda state: state.apps,
}


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
_NO_PAYLOAD = _PayloadIdentity()


class _SentHeaders:
    """The request's `Authorization` lines and identity header lines, read in one pass over its
    raw headers (names compared case-insensitively, values decoded as Litestar decodes them)."""

    __slots__ = ("authorization", "identity")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self.authorization: list[str] = []
        self.identity: dict[str, list[str]] = {}
        for name, value in raw:
            lowered = name.lower()
            if lowered == _AUTHORIZATION:
                self.authorization.append(value.decode("latin-1"))
            elif (field := _FIELD_OF.get(lowered)) is not None:
                self.identity.setdefault(field, []).append(value.decode("latin-1"))

    def lines(self, field: str) -> list[str]:
        return self.identity.get(field, [])


class IdentityService:
    def __init__(
        self,
        tokens: TokenService,
        control: ControlPlaneProjector,
        spine: EventSpine,
        settings: Settings,
        *,
        tickets: TicketSigner,
        clock: Callable[[], datetime],
    ) -> None:
        self.tokens = tokens
        self.tickets = tickets
        self._control = control
        self._spine = spine
        self._settings = settings
        self._clock = clock

    async def principal(self, headers: _SentHeaders) -> Principal:
        sent = headers.authorization
        if len(sent) > 1 or "," in "".join(sent):  # which one a proxy on the way checked is a guess
            raise InvalidToken("send one `Authorization` header with one credential")
        scheme, _, token = (sent or [""])[0].partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingToken("send `Authorization: Bearer <token>`")
        return await self.tokens.verify(token.strip())

    async def context(
        self, connection: ASGIConnection[Any, Any, Any, Any], opt: dict[str, Any]
    ) -> RequestContext:
        headers = _SentHeaders(connection.scope["headers"])
        ticket = self._ticket(connection, headers, opt)
        if ticket is not None:
            return await self._ticket_context(connection, headers, ticket, opt)
        principal = await self.principal(headers)
        admit(connection, principal.tenant_id, opt)  # the earliest point the tenant is known for sure
        role, tenant = await self._membership(principal)
        sent, twice = _sent_identity(headers)
        env = _valid(effective_env(principal, sent, self._settings.default_env), "X-Env")
        data_route = opt.get("context", "data") == "data"
        # In a control-plane body, `tenant_id` or `user_id` names what the command acts on, not the caller.
        # A streamed body (`opt={"raw_body": True}`: an object's bytes) is the handler's to read, once.
        streamed = opt.get("raw_body", False)
        payload = await _payload_identity(connection) if data_route and not streamed else NOTHING_SENT

        def claims() -> None:
            check_claims(principal, tenant.mode, env, sent, payload)
            if opt.get("query_identity"):
                _query_claims(
                    connection, lambda query: check_claims(principal, tenant.mode, env, sent, query)
                )

        await self._checked(connection, principal, env, tenant, twice, claims)
        project_id, surface_id, app_id = AUDIT_PROJECT, None, None
        if data_route:
            tenant_id = principal.tenant_id
            project_id = await self._known("project", tenant_id, sent.project_id, "X-Project-Id")
            surface_id = await self._known("surface", tenant_id, sent.surface_id, "X-Surface-Id")
            if sent.app_id is not None or opt.get("requires_app"):
                app_id = await self._known("app", tenant_id, sent.app_id, "X-App-Id")
        return RequestContext(
            tenant_id=principal.tenant_id,
            env=env,
            project_id=project_id,
            mode=tenant.mode,
            user_id=principal.user_id,
            surface_id=surface_id,
            app_id=app_id,
            request_id=connection.scope["state"].get("request_id"),
            roles=frozenset({role}),
        )

    def _ticket(
        self, connection: ASGIConnection[Any, Any, Any, Any], headers: _SentHeaders, opt: dict[str, Any]
    ) -> StreamTicket | None:
        """The request's stream ticket (`?ticket=`), verified and unexpired, if it sends one."""
        if not connection.scope.get("query_string"):
            return None
        sent = connection.query_params.getall("ticket", [])
        if not sent:
            return None
        if not opt.get("ticket"):
            raise InvalidToken(TICKET_ROUTES)
        if len(sent) > 1:
            raise InvalidToken("send one stream ticket")
        if headers.authorization:
            raise InvalidToken("send one credential: a stream ticket or an `Authorization` header")
        ticket = self.tickets.verify(sent[0])
        check_unexpired(ticket, self._clock())
        return ticket

    async def _ticket_context(
        self,
        connection: ASGIConnection[Any, Any, Any, Any],
        headers: _SentHeaders,
        ticket: StreamTicket,
        opt: dict[str, Any],
    ) -> RequestContext:
        """The context a ticket was issued for; headers sent along may only repeat it."""
        principal = ticket.principal
        admit(connection, principal.tenant_id, opt)
        role, tenant = await self._membership(principal)  # a member removed since: their tickets end
        sent, twice = _sent_identity(headers)
        chosen = SentIdentity(
            project_id=ticket.project_id, surface_id=ticket.surface_id, app_id=ticket.app_id
        )

        def claims() -> None:
            check_ticket_claims(ticket, tenant.mode, sent)
            if opt.get("query_identity"):
                _query_claims(
                    connection, lambda query: check_claims(principal, tenant.mode, ticket.env, chosen, query)
                )

        await self._checked(connection, principal, ticket.env, tenant, twice, claims)
        return RequestContext(
            tenant_id=ticket.tenant_id,
            env=ticket.env,
            project_id=ticket.project_id,
            mode=tenant.mode,
            user_id=ticket.user_id,
            surface_id=ticket.surface_id,
            app_id=ticket.app_id,
            request_id=connection.scope["state"].get("request_id"),
            roles=frozenset({role}),
        )

    async def _membership(self, principal: Principal) -> tuple[Role, TenantCreated]:
        """The caller's role and tenant record; `NotMember` when it has none."""
        control = self._control.state
        if control.role_of(principal.tenant_id, principal.user_id) is None:
            await self._control.catch_up()  # a membership written a moment ago, maybe elsewhere
        role = control.role_of(principal.tenant_id, principal.user_id)
        tenant = control.tenants.get(principal.tenant_id)
        if role is None or tenant is None:
            raise NotMember(f"user {principal.user_id!r} is not a member of tenant {principal.tenant_id!r}")
        return role, tenant

    async def _checked(
        self,
        connection: ASGIConnection[Any, Any, Any, Any],
        principal: Principal,
        env: str,
        tenant: TenantCreated,
        twice: str | None,
        check: Callable[[], None],
    ) -> None:
        """Refuse an identity header sent twice, then run the claims `check`; audit a refusal."""
        try:
            if twice is not None:
                header = _HEADERS[twice]
                actual = stated_truth(principal, tenant.mode).get(twice)
                raise DuplicateIdentity(twice, header, connection.headers.getall(header), actual)
            check()
        except IdentityOverride as exc:
            await self._audit_violation(principal, env, exc, connection)
            raise

    async def _known(self, kind: str, tenant_id: str, value: str | None, header: str) -> str:
        if not value:
            raise MissingContext(header)
        _valid(value, header)
        records = _RECORDS[kind]
        if (tenant_id, value) not in records(self._control.state):
            await self._control.catch_up()  # a record written a moment ago, maybe elsewhere
            if (tenant_id, value) not in records(self._control.state):
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
    connection.scope["state"]["ctx"] = await identity.context(connection, handler.opt)


async def _payload_identity(connection: ASGIConnection[Any, Any, Any, Any]) -> SentIdentity:
    if connection.scope.get("method") not in _BODY_METHODS:
        return SentIdentity()
    body: bytes = await connection.body()  # type: ignore[attr-defined]  # cached: the handler reads it again
    check_depth(body, connection.app.state.settings.max_json_depth)  # before anything decodes it
    try:
        fields = _payload_decoder.decode(body)
    except msgspec.DecodeError:  # not a JSON object: the handler answers 422
        return NOTHING_SENT
    if fields == _NO_PAYLOAD:  # the usual body: no identity field at all
        return NOTHING_SENT
    return SentIdentity(
        **{k: None if v is None else str(v) for k, v in msgspec.structs.asdict(fields).items()}
    )


def _query_claims(
    connection: ASGIConnection[Any, Any, Any, Any], check: Callable[[SentIdentity], None]
) -> None:
    """Run the payload rule (`check`) over the identity fields of the query string; a refusal
    names the query as its source. A field given twice states both values, which never match."""
    if not connection.scope.get("query_string"):
        return
    params = connection.query_params
    stated = {field: ",".join(params.getall(field, [])) or None for field in _HEADERS}
    query = SentIdentity(**stated)
    if query == NOTHING_SENT:
        return
    try:
        check(query)
    except IdentityOverride as exc:
        refused = IdentityOverride(exc.field, "query", exc.sent, exc.actual)
        refused.message = f"query parameter {exc.field!r} disagrees with the token and the request's context"
        refused.args = (refused.message,)
        raise refused from exc


def _sent_identity(headers: _SentHeaders) -> tuple[SentIdentity, str | None]:
    """What the identity headers state, and the first field whose header is sent more than once.

    More than once is two field lines, or one with a comma: HTTP lets a proxy (or a client
    library) join repeated lines into one, comma-separated, and no identifier holds a comma.
    A repeated header states nothing here (the request is refused for it once the refusal can be
    audited), so the env of the audit is the token's, or `X-Env` when that one is sent once.
    """
    if not headers.identity:
        return NOTHING_SENT, None
    values: dict[str, str | None] = {}
    twice = None
    for field in _HEADERS:
        lines = headers.lines(field)
        once = len(lines) == 1 and "," not in lines[0]
        values[field] = lines[0] if once else None
        if lines and not once and twice is None:
            twice = field
    return SentIdentity(**values), twice


def _named_project(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The project a refused request named (its audit shows the violation), if one valid id."""
    sent = connection.headers.getall("x-project-id", [])
    return sent[0] if len(sent) == 1 and matches(sent[0]) else None  # a comma never matches


def _valid(value: str, header: str) -> str:
    """A header's identifier, by the one domain rule; 400 `context.invalid_field` naming the header."""
    if not matches(value):
        raise InvalidContext(header)
    return value
