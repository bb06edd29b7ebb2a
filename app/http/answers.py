"""What each operation can answer: every status and `error_code`, in one table.

An operation's answers are those of what it passes through, found from its route — the server
and its connection limits, the identity guard (`opt`: `public`, `context`, `follower`), the body
read of every POST, PUT and PATCH, the parameters it validates, the routed stores it opens, the
read-your-writes wait (`X-Spine-Min-Position`), `If-Match` — and its own errors, declared in
`OPERATIONS`. Statuses come from the one mapping in `app.http.errors`, codes from the errors
themselves (an instance where the code names a kind), so each is written once, where it is decided.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from litestar.enums import ParamType
from litestar.handlers import HTTPRouteHandler
from litestar.params import ParameterKwarg

from app.http.errors import http_error_code, status_of
from domain.errors import (
    AlreadyExists,
    AppConflict,
    AuditAppendOnly,
    AuditNotFound,
    BackendUnavailable,
    BlackboardConflict,
    BlackboardNotFound,
    BodyIncomplete,
    BootstrapRefused,
    BudgetExceeded,
    FlagConflict,
    FlagNotFound,
    Forbidden,
    ForbiddenBackend,
    ForbiddenRoute,
    ForbiddenSecretRef,
    IdempotencyConflict,
    IdentityOverride,
    InvalidContext,
    InvalidCursor,
    InvalidFlagValue,
    InvalidRequest,
    InvalidSecretRef,
    InvalidToken,
    JsonTooDeep,
    KpiConflict,
    KpiNotFound,
    KpiRangeInvalid,
    KpiRangeTooLarge,
    KpiTimeOutOfRange,
    KpiTooManySeries,
    MintingDisabled,
    MissingContext,
    MissingRoute,
    MissingToken,
    NoDraftToPublish,
    NotADraft,
    NotAPublishedVersion,
    NotFound,
    NotMember,
    NotReady,
    NotThreadMember,
    NotThreadOwner,
    ObjectConflict,
    ObjectNotFound,
    ObjectQuotaExceeded,
    ObjectTooLarge,
    ObjectUrlExpired,
    OwnerNotRemovable,
    PageContentConflict,
    PageNotFound,
    PageNotPublished,
    PageVersionNotFound,
    PreconditionFailed,
    ProjectionLagging,
    RangeNotSatisfiable,
    RateLimitExceeded,
    RequestTimeout,
    RouteConflict,
    SaveConflict,
    SaveNotFound,
    SaveVersionNotFound,
    SecretInConfig,
    SecretUnavailable,
    SeoConfigConflict,
    SeoConfigNotFound,
    SpineError,
    StrategyLockConflict,
    StrategyLockNotFound,
    StreamNotFound,
    TableConflict,
    TableNotFound,
    TableRowNotFound,
    TableRowVersionNotFound,
    TableSchemaInvalid,
    TableSchemaViolation,
    ThreadArchived,
    ThreadConflict,
    ThreadExists,
    ThreadNotFound,
    TicketExpired,
    TooManyConcurrent,
    TooManyMembers,
    UnknownContext,
    UnknownSaveKind,
    Unreadable,
    UploadNotFound,
    VersionConflict,
)
from projections.catalog import VIEWS

Answer = tuple[int, str]
"""A status and an `error_code` the operation may answer with."""

Declared = SpineError | type[SpineError] | Answer
"""An error class (its constant code), an instance (codes that name a kind), or a raw answer."""

Answers = tuple[tuple[int, tuple[str, ...]], ...]
"""The codes of each status, by status (a tuple: hashable)."""


@dataclass(frozen=True)
class Spec:
    """What one operation adds to what its route's `opt` and signature already tell."""

    errors: tuple[Declared, ...] = ()
    kind: str | None = None  # the routed view store it reads or writes through
    etag: bool = False  # its success answer carries the version as ETag
    position: bool | None = None  # X-Spine-Position on success; default: every write
    truncated: bool = False  # X-Spine-Truncated when retention removed events it may have read


def _view(kind: str) -> tuple[Declared, ...]:
    return MissingRoute(kind, "", "", ""), BackendUnavailable(kind, "")


def _routed(*kinds: str) -> tuple[Declared, ...]:
    """Stores resolved through the routing registry: no route, a route the tenant's mode refuses,
    a secret reference that cannot be read, a backend that does not answer."""
    views = (error for kind in kinds for error in _view(kind))
    return (*views, ForbiddenRoute("", "", ""), InvalidSecretRef("", ""), SecretUnavailable("", ""))


def _tenant() -> NotFound:
    return NotFound("tenant", "")


def _save(*errors: Declared) -> Spec:
    return Spec(errors=(UnknownSaveKind("", []), *errors), kind="tabular_store", etag=True)


def _page(*errors: Declared) -> Spec:
    return Spec(errors=errors, kind="page_content_store", etag=True)


def _realtime(plural: str) -> dict[str, Spec]:
    """The operations of one kind of the realtime registry (`/v1/threads`, `/v1/canvases`)."""
    kind, one = "realtime_registry", f"/v1/{plural}/{{id}}"
    return {
        f"POST /v1/{plural}": Spec(errors=(ThreadExists, TooManyMembers), kind=kind, etag=True),
        f"GET /v1/{plural}": Spec(errors=(InvalidCursor,), kind=kind),
        f"GET {one}": Spec(
            errors=(ThreadNotFound, NotThreadMember, Unreadable("view", 0)), kind=kind, etag=True
        ),
        f"PATCH {one}": Spec(
            errors=(
                ThreadNotFound,
                NotThreadOwner,
                ThreadConflict,
                ThreadArchived,
                OwnerNotRemovable,
                TooManyMembers,
            ),
            kind=kind,
            etag=True,
        ),
        # a message id reused in another stream: `spine.idempotency_conflict`
        f"POST {one}/messages": Spec(
            errors=(ThreadNotFound, NotThreadMember, ThreadArchived, ThreadConflict, IdempotencyConflict),
            kind=kind,
        ),
        f"GET {one}/messages": Spec(errors=(ThreadNotFound, NotThreadMember), kind=kind),
    }


def _objects() -> dict[str, Spec]:
    """The object store's operations: its bytes' store (`object_store`) and, for what reads or
    writes the index, the view kept beside the partition's log (`event_spine`)."""
    bytes_store = (*_routed("object_store"), ObjectNotFound)
    written = (ObjectTooLarge, ObjectQuotaExceeded, BodyIncomplete)
    # Spine's own URLs: the grant in the path is the credential, checked like a token
    granted = (InvalidToken, ObjectUrlExpired, NotMember, TooManyConcurrent("requests", "", 0),
               *_routed("event_spine", "object_store"), RequestTimeout)  # fmt: skip
    one = "/v1/objects/{key}"
    return {
        "GET /v1/objects": Spec(errors=(InvalidCursor, *_routed("object_store")), kind="event_spine"),
        f"PUT {one}": Spec(
            errors=(*bytes_store, *written, ObjectConflict, PreconditionFailed), kind="event_spine", etag=True
        ),
        f"GET {one}": Spec(errors=(*bytes_store, RangeNotSatisfiable), kind="event_spine", etag=True),
        f"DELETE {one}": Spec(errors=(*bytes_store, ObjectConflict), kind="event_spine", etag=True),
        # …/upload-url, …/download-url (no append), …/uploads/{upload_id} (appends: X-Spine-Position)
        f"POST {one}": Spec(
            errors=(*bytes_store, *written, UploadNotFound, ObjectConflict, MintingDisabled),
            kind="event_spine",
            position=False,
        ),
        "PUT /v1/object-uploads/{upload_id}": Spec(errors=(*granted, *written), etag=True),
        "GET /v1/object-downloads/{download_id}": Spec(
            errors=(*granted, ObjectNotFound, RangeNotSatisfiable), etag=True, position=False
        ),
    }


# Answered before the request reaches the app (`app.http.connections`), whatever it asks: a
# connection over the cap, a request head over the size limit. They carry no X-Request-Id.
BEFORE_THE_APP: tuple[Answer, ...] = (
    (503, "concurrency.too_many_connections"),
    (431, "request.head_too_large"),
)
# Every guarded route: the token, the caller's membership and the tenant's requests in flight,
# the identity headers (`X-Env` must be an identifier), and the system spine the guard reads.
_GUARDED: tuple[Declared, ...] = (
    MissingToken,
    InvalidToken,
    NotMember,
    IdentityOverride,
    InvalidContext,
    TooManyConcurrent("requests", "", 0),
    BackendUnavailable("event_spine", ""),
)
# Every guarded route but the limits' own: the caller's rate limit (`app.http.rate_limits`).
_RATE_LIMITED: tuple[Declared, ...] = (
    RateLimitExceeded("", 0, 0, 0),
    MissingRoute("rate_limit", "", "", ""),
    BackendUnavailable("rate_limit", ""),
    InvalidSecretRef("", ""),
    SecretUnavailable("", ""),
)
# Data routes: the project, surface and app headers, and the partition's routed event spine.
_DATA: tuple[Declared, ...] = (
    MissingContext(""),
    UnknownContext("project", ""),
    UnknownContext("surface", ""),
    UnknownContext("app", ""),
    *_routed("event_spine"),
)
# Every POST, PUT and PATCH: the body is read (size, JSON depth, a client that stalls) before any
# handler, whether the operation takes one or not.
_BODY_READ: tuple[Declared, ...] = ((413, http_error_code(413)), JsonTooDeep, RequestTimeout)
_FOLLOWERS = TooManyConcurrent("followers", "", 0)  # SSE routes (`opt={"follower": True}`)
_MIN_POSITION: tuple[Declared, ...] = (InvalidCursor, ProjectionLagging)
_IF_MATCH: tuple[Declared, ...] = (PreconditionFailed, InvalidRequest)
_ADMIN = (Forbidden, _tenant())
_UNREADABLE = Unreadable("view", 0)  # a stored document nested deeper than Spine serves
# Writes and reads of personal fields (`domain.personal`) open the tenant's routed key store.
_PERSONAL = _routed("key_store")
# A rebuild or a snapshot opens the partition's log and the view's store, wherever they are routed
# (so does the status, which reads each view's checkpoint and snapshot).
_REBUILT = _routed("event_spine", *sorted({view.kind for view in VIEWS.values()}))

OPERATIONS: dict[str, Spec] = {
    "POST /v1/events": Spec(errors=(VersionConflict, IdempotencyConflict)),
    "GET /v1/events": Spec(errors=(InvalidCursor, TicketExpired, *_PERSONAL), truncated=True),
    "GET /v1/events/stream": Spec(errors=(InvalidCursor, TicketExpired, *_PERSONAL)),
    "POST /v1/stream-tickets": Spec(errors=(MintingDisabled,), position=False),
    "GET /v1/streams/{stream}": Spec(
        errors=(StreamNotFound, Unreadable("document", 0), *_PERSONAL), truncated=True
    ),
    "PUT /v1/retention": Spec(errors=(Forbidden, NotFound("project", ""))),
    "GET /v1/retention": Spec(),
    "POST /v1/retention/runs": Spec(
        errors=(Forbidden, NotFound("project", ""), VersionConflict), position=False
    ),
    "POST /v1/auth/bootstrap": Spec(
        errors=(BootstrapRefused, MintingDisabled, BackendUnavailable("event_spine", "")), position=False
    ),
    "GET /v1/modes": Spec(errors=(Forbidden,)),
    "POST /v1/tenants": Spec(errors=(Forbidden, AlreadyExists)),
    "GET /v1/tenants": Spec(errors=(Forbidden,)),
    "GET /v1/tenants/{tenant_id}": Spec(errors=_ADMIN),
    "POST /v1/tenants/{tenant_id}/projects": Spec(errors=(*_ADMIN, AlreadyExists)),
    "POST /v1/tenants/{tenant_id}/surfaces": Spec(errors=(*_ADMIN, AlreadyExists)),
    "POST /v1/tenants/{tenant_id}/apps": Spec(errors=(*_ADMIN, AlreadyExists)),
    "PUT /v1/tenants/{tenant_id}/apps/{app_id}": Spec(errors=(*_ADMIN, AppConflict), etag=True),
    "POST /v1/tenants/{tenant_id}/members": Spec(errors=_ADMIN),
    "PUT /v1/tenants/{tenant_id}/limits": Spec(errors=_ADMIN),
    "GET /v1/tenants/{tenant_id}/limits": Spec(errors=_ADMIN),
    "DELETE /v1/tenants/{tenant_id}/users/{user_id}/data": Spec(errors=(*_ADMIN, *_routed("key_store"))),
    "POST /v1/tenants/{tenant_id}/tokens": Spec(
        errors=(*_ADMIN, NotFound("member", ""), MintingDisabled), position=False
    ),
    "PUT /v1/routes": Spec(
        errors=(Forbidden, _tenant(), ForbiddenBackend, SecretInConfig, ForbiddenSecretRef, RouteConflict)
    ),
    "GET /v1/routes": Spec(errors=_ADMIN),
    "DELETE /v1/routes": Spec(errors=(Forbidden, NotFound("route", ""))),
    "GET /v1/routes/history": Spec(errors=_ADMIN),
    "GET /v1/diagnostics": Spec(errors=_ADMIN),
    "GET /v1/projections": Spec(errors=(*_ADMIN, NotFound("projection", ""), *_REBUILT)),
    "POST /v1/projections/{name}/rebuild": Spec(
        errors=(*_ADMIN, *(NotFound(kind, "") for kind in ("projection", "project", "env")), *_REBUILT),
        position=False,
    ),
    "POST /v1/projections/{name}/snapshots": Spec(
        errors=(*_ADMIN, *(NotFound(kind, "") for kind in ("projection", "project", "env")), *_REBUILT),
        position=False,
    ),
    "PUT /v1/memory/{key}": Spec(errors=_PERSONAL, kind="memory_store"),
    "GET /v1/memory/{key}": Spec(errors=(_UNREADABLE, *_PERSONAL), kind="memory_store"),
    "DELETE /v1/memory/{key}": Spec(kind="memory_store"),
    "POST /v1/sessions/{session_id}/messages": Spec(errors=_PERSONAL, kind="memory_store"),
    "GET /v1/sessions/{session_id}": Spec(errors=_PERSONAL, kind="memory_store"),
    "PUT /v1/runs/{run_id}/blackboard/{key}": Spec(
        errors=(BlackboardConflict,), kind="blackboard_store", etag=True
    ),
    "GET /v1/runs/{run_id}/blackboard/{key}": Spec(
        errors=(BlackboardNotFound, _UNREADABLE), kind="blackboard_store", etag=True
    ),
    "GET /v1/runs/{run_id}/blackboard": Spec(kind="blackboard_store"),
    "POST /v1/audit": Spec(kind="audit"),
    "GET /v1/audit": Spec(errors=(Forbidden, InvalidCursor), kind="audit"),
    "GET /v1/audit/{record_id}": Spec(errors=(AuditNotFound, _UNREADABLE), kind="audit"),
    "PUT /v1/audit": Spec(errors=(AuditAppendOnly,), position=False),
    "PATCH /v1/audit": Spec(errors=(AuditAppendOnly,), position=False),
    "DELETE /v1/audit": Spec(errors=(AuditAppendOnly,), position=False),
    "PUT /v1/audit/{record_id}": Spec(errors=(AuditAppendOnly,), position=False),
    "PATCH /v1/audit/{record_id}": Spec(errors=(AuditAppendOnly,), position=False),
    "DELETE /v1/audit/{record_id}": Spec(errors=(AuditAppendOnly,), position=False),
    "POST /v1/budget/usage": Spec(errors=(BudgetExceeded,), kind="budget_store"),
    "PUT /v1/budget/limits": Spec(kind="budget_store"),
    "GET /v1/budget": Spec(kind="budget_store"),
    "GET /v1/budget/ledger": Spec(errors=(InvalidCursor,), kind="budget_store"),
    "POST /v1/saves/{kind}": _save(SaveConflict),
    "PUT /v1/saves/{kind}/{save_id}": _save(SaveConflict, SaveNotFound),
    "DELETE /v1/saves/{kind}/{save_id}": _save(SaveConflict, SaveNotFound),
    "GET /v1/saves/{kind}/{save_id}": _save(SaveNotFound, _UNREADABLE),
    "GET /v1/saves/{kind}": Spec(errors=(UnknownSaveKind("", []), InvalidCursor), kind="tabular_store"),
    "GET /v1/saves/{kind}/{save_id}/versions": Spec(
        errors=(UnknownSaveKind("", []), SaveNotFound, InvalidCursor), kind="tabular_store"
    ),
    "GET /v1/saves/{kind}/{save_id}/versions/{version}": _save(
        SaveNotFound, SaveVersionNotFound, _UNREADABLE
    ),
    "POST /v1/strategy-locks/{lock_id}/snapshots": Spec(
        errors=(StrategyLockConflict,), kind="tabular_store", etag=True
    ),
    "GET /v1/strategy-locks/{lock_id}/snapshots/latest": Spec(
        errors=(StrategyLockNotFound, _UNREADABLE), kind="tabular_store", etag=True
    ),
    "GET /v1/strategy-locks/{lock_id}/snapshots": Spec(
        errors=(StrategyLockNotFound, InvalidCursor), kind="tabular_store"
    ),
    "GET /v1/tables": Spec(errors=(InvalidCursor,), kind="tabular_store"),
    "PUT /v1/tables/{table}": Spec(
        errors=(TableConflict, TableSchemaInvalid), kind="tabular_store", etag=True
    ),
    "GET /v1/tables/{table}": Spec(errors=(TableNotFound, _UNREADABLE), kind="tabular_store", etag=True),
    "GET /v1/tables/{table}/rows": Spec(errors=(InvalidCursor,), kind="tabular_store"),
    # a stored schema whose `$ref`s loop on this value is refused as `tabular.invalid_schema`
    "PUT /v1/tables/{table}/rows/{key}": Spec(
        errors=(TableConflict, TableSchemaViolation, TableSchemaInvalid), kind="tabular_store", etag=True
    ),
    "DELETE /v1/tables/{table}/rows/{key}": Spec(
        errors=(TableConflict, TableRowNotFound), kind="tabular_store", etag=True
    ),
    # the row, its history (`…/versions`, the history cursor `after`) or one version (`…/versions/{n}`)
    "GET /v1/tables/{table}/rows/{key}": Spec(
        errors=(TableRowNotFound, TableRowVersionNotFound, InvalidCursor, _UNREADABLE),
        kind="tabular_store",
        etag=True,
    ),
    "POST /v1/analytics/events": Spec(errors=_PERSONAL, kind="analytics_store"),
    "POST /v1/analytics/events/batch": Spec(errors=_PERSONAL, kind="analytics_store"),
    "GET /v1/analytics/events": Spec(errors=(InvalidCursor, *_PERSONAL), kind="analytics_store"),
    "GET /v1/analytics/counts": Spec(errors=(InvalidCursor,), kind="analytics_store"),
    "PUT /v1/seo/{page}": Spec(errors=(SeoConfigConflict,), kind="seo_config_store", etag=True),
    "GET /v1/seo/{page}": Spec(errors=(SeoConfigNotFound, _UNREADABLE), kind="seo_config_store", etag=True),
    "DELETE /v1/seo/{page}": Spec(
        errors=(SeoConfigNotFound, SeoConfigConflict), kind="seo_config_store", etag=True
    ),
    "GET /v1/seo": Spec(errors=(InvalidCursor,), kind="seo_config_store"),
    "PUT /v1/kpis/{name}": Spec(errors=(KpiConflict,), kind="kpi_store", etag=True),
    "GET /v1/kpis/{name}": Spec(errors=(KpiNotFound, _UNREADABLE), kind="kpi_store", etag=True),
    "GET /v1/kpis": Spec(errors=(InvalidCursor,), kind="kpi_store"),
    "POST /v1/kpis/{name}/values": Spec(errors=(KpiNotFound, KpiTimeOutOfRange), kind="kpi_store"),
    "GET /v1/kpis/{name}/series": Spec(
        errors=(KpiNotFound, KpiRangeInvalid, KpiRangeTooLarge, KpiTooManySeries), kind="kpi_store"
    ),
    "PUT /v1/pages/{page}/content/draft": _page(PageContentConflict),
    "PUT /v1/pages/{page}/content": _page(PageContentConflict),
    "POST /v1/pages/{page}/publish": _page(
        PageNotFound, NoDraftToPublish, PageVersionNotFound, NotADraft, PageContentConflict
    ),
    "POST /v1/pages/{page}/rollback": _page(
        PageNotFound, PageVersionNotFound, NotAPublishedVersion, PageContentConflict
    ),
    "GET /v1/pages/{page}/content/draft": _page(PageNotFound, PageVersionNotFound, _UNREADABLE),
    "GET /v1/pages/{page}/content": _page(PageNotPublished, PageVersionNotFound, _UNREADABLE),
    "GET /v1/pages/{page}/content/versions": Spec(
        errors=(PageNotFound, InvalidCursor), kind="page_content_store"
    ),
    "GET /v1/pages/{page}/content/versions/{version}": _page(PageNotFound, PageVersionNotFound, _UNREADABLE),
    "GET /v1/pages": Spec(errors=(InvalidCursor,), kind="page_content_store"),
    "PUT /v1/flags/{key}": Spec(errors=(FlagConflict, InvalidFlagValue), kind="feature_flags", etag=True),
    "GET /v1/flags/{key}": Spec(errors=(FlagNotFound, _UNREADABLE), kind="feature_flags", etag=True),
    "DELETE /v1/flags/{key}": Spec(errors=(FlagNotFound, FlagConflict), kind="feature_flags", etag=True),
    "GET /v1/flags": Spec(errors=(InvalidCursor,), kind="feature_flags"),
    "GET /v1/flags/{key}/history": Spec(errors=(FlagNotFound, InvalidCursor), kind="feature_flags"),
    "GET /v1/flags/evaluate": Spec(errors=(InvalidCursor, _UNREADABLE), kind="feature_flags"),
    "GET /v1/flags/stream": Spec(errors=(InvalidCursor, TicketExpired), kind="feature_flags"),
    **_objects(),
    **_realtime("threads"),
    **_realtime("canvases"),
    "GET /v1/client.js": Spec(),
    "GET /health": Spec(),
    "GET /ready": Spec(errors=(BackendUnavailable("event_spine", ""), NotReady)),
    "GET /metrics": Spec(),
}
"""Each operation's own answers, by `METHOD /path`; a test keeps it in step with the routes."""

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Handler arguments that are not request parameters: what dependencies and Litestar provide.
_PROVIDED = frozenset({"call", "services", "request", "state", "scope", "headers", "socket"})


def operation_keys(handler: HTTPRouteHandler, path: str) -> list[str]:
    """`METHOD /path` of each operation the handler serves, as `OPERATIONS` names them."""
    return [
        f"{method} {path}" for method in sorted(handler.http_methods) if method not in {"HEAD", "OPTIONS"}
    ]


def answers_of(handler: HTTPRouteHandler, specs: list[Spec], *, public: bool, data: bool) -> Answers:
    """Every error the operation can answer, by status: its own, and those of what it passes through."""
    parameters = handler.parsed_fn_signature.parameters
    headers = {_header_name(p.kwarg_definition) for p in parameters.values()}
    declared: list[Declared] = [*BEFORE_THE_APP, *(error for spec in specs for error in spec.errors)]
    if not public:
        declared += _GUARDED
        if handler.opt.get("rate_limit") is not False:
            declared += _RATE_LIMITED
    if handler.opt.get("follower"):
        declared.append(_FOLLOWERS)
    if data:
        declared += _DATA
    for kind in sorted({spec.kind for spec in specs if spec.kind}):
        declared += _view(kind)
    if set(handler.http_methods) & _BODY_METHODS:
        # a streamed body (`opt={"raw_body": True}`) is read by its handler, under its own limits
        declared += (RequestTimeout,) if handler.opt.get("raw_body") else _BODY_READ
    if set(parameters) - _PROVIDED:  # a body, a path, a query or a header that may not validate
        declared.append(InvalidRequest)
    if "x-spine-min-position" in headers:
        declared += _MIN_POSITION
    if "if-match" in headers:
        declared += _IF_MATCH
    return _group(declared)


def _header_name(kwarg: object) -> str | None:
    """The header a handler argument reads, lower-cased, if it is a header parameter."""
    if not isinstance(kwarg, ParameterKwarg):
        return None
    name = kwarg.header or (kwarg.name if kwarg.param_type is ParamType.HEADER else None)
    return name.lower() if name else None


def _answer(declared: Declared) -> Answer:
    if isinstance(declared, tuple):
        return declared
    if isinstance(declared, SpineError):
        return status_of(type(declared)), declared.error_code
    return status_of(declared), declared.code


def _group(declared: Iterable[Declared]) -> Answers:
    grouped: dict[int, set[str]] = {}
    for status, code in (_answer(item) for item in declared):
        grouped.setdefault(status, set()).add(code)
    return tuple((status, tuple(sorted(grouped[status]))) for status in sorted(grouped))
