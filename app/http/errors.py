"""The one place where errors become HTTP answers: RFC 9457 problem details with `error_code`."""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from app.http.allow import allow_at
from domain.errors import (
    AlreadyExists,
    AuditAppendOnly,
    AuditNotFound,
    BackendUnavailable,
    BlackboardConflict,
    BlackboardNotFound,
    BlobMissing,
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
    InvalidIdentifier,
    InvalidRequest,
    InvalidSecretRef,
    InvalidToken,
    JsonTooDeep,
    KpiConflict,
    KpiNotFound,
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
    ObjectNotFound,
    ObjectQuotaExceeded,
    ObjectTooLarge,
    ObjectUrlExpired,
    OwnerNotRemovable,
    PageContentConflict,
    PageNotFound,
    PageNotPublished,
    PageVersionNotFound,
    PositionConflict,
    PreconditionFailed,
    ProjectionLagging,
    RangeNotSatisfiable,
    RateLimitExceeded,
    RequestTimeout,
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
    TableNotFound,
    TableRowNotFound,
    TableRowVersionNotFound,
    ThreadArchived,
    ThreadExists,
    ThreadNotFound,
    TicketExpired,
    TooManyConcurrent,
    UnknownContext,
    UnknownSaveKind,
    Unreadable,
    UploadNotFound,
    VersionConflict,
)
from domain.json_depth import SERVED_DEPTH

log = logging.getLogger(f"spine.{__name__}")

PROBLEM_JSON = "application/problem+json"

_STATUS: dict[type[SpineError], int] = {
    InvalidRequest: 422,
    InvalidIdentifier: 422,
    JsonTooDeep: 422,
    # Not 503: its Retry-After would invite retries that can never succeed; not 500: nothing failed,
    # the document breaks a limit, the same answer every time (the write of it would be 422 too).
    Unreadable: 422,
    MissingContext: 400,
    InvalidContext: 400,
    InvalidCursor: 400,
    StreamNotFound: 404,
    VersionConflict: 409,
    PreconditionFailed: 412,
    IdempotencyConflict: 409,
    PositionConflict: 409,
    BackendUnavailable: 503,
    BlackboardConflict: 409,
    BlackboardNotFound: 404,
    BudgetExceeded: 402,
    MissingToken: 401,
    InvalidToken: 401,
    TicketExpired: 401,
    IdentityOverride: 403,
    NotMember: 403,
    Forbidden: 403,
    BootstrapRefused: 403,
    MintingDisabled: 403,
    MissingRoute: 503,
    InvalidSecretRef: 503,  # a route's reference this deployment cannot read: the backend cannot open
    SecretUnavailable: 503,
    SecretInConfig: 422,
    ForbiddenSecretRef: 422,  # refused when the route is written; once stored, `InvalidSecretRef`
    NotReady: 503,
    ProjectionLagging: 503,
    RequestTimeout: 408,
    TooManyConcurrent: 429,
    RateLimitExceeded: 429,
    ForbiddenRoute: 503,
    ForbiddenBackend: 400,
    UnknownContext: 400,
    NotFound: 404,
    AlreadyExists: 409,
    AuditAppendOnly: 405,
    AuditNotFound: 404,
    SeoConfigConflict: 409,
    SeoConfigNotFound: 404,
    SaveConflict: 409,
    SaveNotFound: 404,
    SaveVersionNotFound: 404,
    UnknownSaveKind: 404,
    StrategyLockConflict: 409,
    StrategyLockNotFound: 404,
    # TableConflict (409), TableSchemaInvalid and TableSchemaViolation (422) inherit theirs
    TableNotFound: 404,
    TableRowNotFound: 404,
    TableRowVersionNotFound: 404,
    KpiConflict: 409,
    KpiNotFound: 404,
    PageContentConflict: 409,
    PageNotFound: 404,
    PageNotPublished: 404,
    PageVersionNotFound: 404,
    NoDraftToPublish: 409,  # the page is there, with nothing to publish: its state, not the request
    NotADraft: 422,
    NotAPublishedVersion: 422,
    FlagConflict: 409,
    FlagNotFound: 404,
    ObjectTooLarge: 413,
    BlobMissing: 404,
    # ObjectConflict (409) inherits its status
    ObjectNotFound: 404,
    ObjectQuotaExceeded: 413,
    RangeNotSatisfiable: 416,
    UploadNotFound: 404,
    ObjectUrlExpired: 401,  # the URL was the credential: ask for a new one
    BodyIncomplete: 400,  # the client left mid-body: nobody reads it, the access log does
    # ThreadConflict (409) and TooManyMembers (422) inherit theirs
    ThreadNotFound: 404,
    ThreadExists: 409,
    NotThreadOwner: 403,
    NotThreadMember: 403,
    ThreadArchived: 409,  # the thread's state refuses it, for good
    OwnerNotRemovable: 409,  # the thread's state refuses it: transfer the ownership first
}

_HTTP_CODES = {
    404: "http.not_found",
    405: "http.method_not_allowed",
    413: "request.too_large",
}


def status_of(error: type[SpineError]) -> int:
    """The HTTP status an error is answered with (the OpenAPI document declares the same)."""
    return next((_STATUS[cls] for cls in error.__mro__ if cls in _STATUS), 500)


def http_error_code(status: int) -> str:
    """The `error_code` of an answer Litestar itself raises (an unknown path, a body too large)."""
    return _HTTP_CODES.get(status, f"http.{status}")


def problem(
    status: int,
    error_code: str,
    message: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": f"urn:spine:error:{error_code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": message,
        "error_code": error_code,
        "message": message,
        **(extra or {}),
    }
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def spine_error_handler(_: Request[Any, Any, Any], exc: SpineError) -> Response[dict[str, Any]]:
    status = status_of(type(exc))
    headers = {"Retry-After": _retry_after(exc)} if status in (429, 503) else None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="spine"'}
    if isinstance(exc, AuditAppendOnly):
        headers = {"Allow": ", ".join(exc.allowed)}
    if isinstance(exc, RangeNotSatisfiable):  # RFC 9110 §14.4: the size a satisfiable range needs
        headers = {"Content-Range": f"bytes */{exc.size}"}
    return problem(status, exc.error_code, exc.message, extra=exc.details(), headers=headers)


def _retry_after(exc: SpineError) -> str:
    """Whole seconds, at least 1: an open circuit breaker says when it lets a call through again."""
    seconds = getattr(exc, "retry_after", None)
    return str(max(1, math.ceil(seconds))) if isinstance(seconds, int | float) else "1"


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    # Litestar answers 400 for bodies and parameters it cannot decode or validate: for a client
    # that is an invalid request, the same as a rule the body breaks.
    if isinstance(exc, ValidationException) or exc.status_code == 400:
        errors = exc.extra if isinstance(exc.extra, list) else []
        return problem(422, "request.invalid", _validation_message(exc, errors), extra={"errors": errors})
    code = http_error_code(exc.status_code)
    message = exc.detail
    if exc.status_code == 413:
        limit = request.route_handler.resolve_request_max_body_size()
        message = f"request body is larger than {limit} bytes"
    headers = exc.headers
    if exc.status_code == 405 and (allow := allow_at(request)):
        headers = {"Allow": allow}  # Litestar's names the methods the path refuses (405 handlers) too
    return problem(exc.status_code, code, message, headers=headers)


def unexpected_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    request_id = request.scope.get("state", {}).get("request_id")
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id, "path": request.url.path})
    return problem(500, "internal.error", f"internal error; quote request id {request_id} when reporting it")


def recursion_error_handler(request: Request[Any, Any, Any], exc: RecursionError) -> Response[dict[str, Any]]:
    """msgspec's encoder or decoder reached the recursion limit: a stored document nests deeper than
    any limit allows (an older version wrote it; reads of views check before they encode, this
    catches what else reads stored JSON, like a stream's events). Any other recursion is a bug."""
    if "serializing an object" not in str(exc):  # msgspec's "(de)serializing an object"
        return unexpected_error_handler(request, exc)
    request_id = request.scope.get("state", {}).get("request_id")
    log.warning(
        "stored document too deep to encode", extra={"request_id": request_id, "path": request.url.path}
    )
    return spine_error_handler(request, Unreadable("document", SERVED_DEPTH))


def _validation_message(exc: HTTPException, errors: list[Any]) -> str:
    parts = [
        str(e.get("message")) + (f" at {e['key']}" if e.get("key") else "")
        for e in errors
        if isinstance(e, dict)
    ]
    return "; ".join(parts) or exc.detail


exception_handlers: ExceptionHandlersMap = {
    SpineError: spine_error_handler,
    HTTPException: http_error_handler,
    RecursionError: recursion_error_handler,
    Exception: unexpected_error_handler,
}
