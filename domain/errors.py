"""The one error tree of Spine.

Every error has a stable ``code`` (the ``error_code`` clients see) and typed fields. How an error
becomes an HTTP answer is decided in one place, ``app.http.errors``.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar


class SpineError(Exception):
    """Root of every error Spine raises on purpose."""

    code: ClassVar[str] = "spine.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def error_code(self) -> str:
        """The code clients see; a class constant except where it names a resource kind."""
        return self.code

    def details(self) -> dict[str, object]:
        """Typed fields that clients may rely on, added to the problem details."""
        return {}


class InvalidRequest(SpineError):
    """A request that is well-formed JSON but breaks a rule of the contract."""

    code = "request.invalid"


class JsonTooDeep(InvalidRequest):
    """A body whose JSON nests deeper than `max_json_depth`: refused before anything decodes it."""

    code = "request.too_deep"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the JSON body nests deeper than {limit} levels")
        self.limit = limit

    def details(self) -> dict[str, object]:
        return {"max_depth": self.limit}


class Unreadable(SpineError):
    """A stored document that nests deeper than Spine serves (an older version, without the body
    limit, wrote it): answered as this problem, or marked in a list, instead of sent.

    `kind` is `view` for a view's document; `document` when only the encoder could tell.
    """

    def __init__(self, kind: str, limit: int) -> None:
        super().__init__(
            f"the stored document nests deeper than the {limit} levels Spine serves (it was written"
            " before JSON depth limits); write it again, or remove it"
        )
        self.kind = kind
        self.limit = limit

    @property
    def error_code(self) -> str:
        return f"{self.kind}.unreadable"

    def details(self) -> dict[str, object]:
        return {"max_depth": self.limit}


class InvalidIdentifier(InvalidRequest):
    """A name that becomes part of a key (tenant, env, project, run, key…) breaks its pattern.

    Raised by `domain.identifiers.check`, and so by building a `Partition` of such a name.
    """

    def __init__(self, field: str, pattern: str) -> None:
        super().__init__(f"{field} must match {pattern}")
        self.field = field

    def details(self) -> dict[str, object]:
        return {"field": self.field}


class MissingContext(SpineError):
    """A required piece of identity (tenant, project, …) was not sent."""

    code = "context.missing_field"

    def __init__(self, field: str) -> None:
        super().__init__(f"missing required context field {field!r}")
        self.field = field

    def details(self) -> dict[str, object]:
        return {"field": self.field}


class InvalidContext(SpineError):
    """An identity field that is present but not a valid identifier."""

    code = "context.invalid_field"

    def __init__(self, field: str) -> None:
        super().__init__(f"context field {field!r} must match [A-Za-z0-9_][A-Za-z0-9_.:-]{{0,127}}")
        self.field = field

    def details(self) -> dict[str, object]:
        return {"field": self.field}


class InvalidCursor(SpineError):
    """A position cursor that is not a non-negative integer at or below the partition head."""

    code = "cursor.invalid"


class StreamNotFound(SpineError):
    """A stream that has no events in this partition."""

    code = "stream.not_found"

    def __init__(self, stream: str) -> None:
        super().__init__(f"stream {stream!r} has no events")
        self.stream = stream

    def details(self) -> dict[str, object]:
        return {"stream": self.stream}


class VersionConflict(SpineError):
    """The stream is not at the version the writer expected (optimistic concurrency)."""

    code = "spine.version_conflict"

    def __init__(self, stream: str, expected: int | str, actual: int) -> None:
        super().__init__(f"stream {stream!r} is at version {actual}, expected {expected}")
        self.stream = stream
        self.expected = expected
        self.actual = actual

    def details(self) -> dict[str, object]:
        return {"stream": self.stream, "expected_version": self.expected, "current_version": self.actual}


class PreconditionFailed(SpineError):
    """An `If-Match` no current representation can match (RFC 9110 §13.1.1): `*` on a resource
    never written or deleted, or weak tags only (If-Match compares strongly)."""

    code = "precondition.failed"


class PositionConflict(SpineError):
    """The partition's next position is not the one an append asked for (copies keep positions)."""

    code = "spine.position_conflict"

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"the partition's next position is {actual}, not {expected}")
        self.expected = expected
        self.actual = actual

    def details(self) -> dict[str, object]:
        return {"expected_position": self.expected, "next_position": self.actual}


class IdempotencyConflict(SpineError):
    """Some, but not all, event ids of an append are already stored, or stored in another stream.

    A retry must resend exactly the batch it sent before; anything else is a client bug that
    appending would turn into duplicated or half-written data.
    """

    code = "spine.idempotency_conflict"

    def __init__(self, stream: str, event_ids: list[str]) -> None:
        super().__init__(
            f"event ids {event_ids!r} are already stored, but not as this exact batch of stream {stream!r}"
        )
        self.stream = stream
        self.event_ids = event_ids

    def details(self) -> dict[str, object]:
        return {"stream": self.stream, "event_ids": self.event_ids}


class BackendUnavailable(SpineError):
    """A backend could not be reached or did not commit; the caller may retry later.

    `retry_after`: seconds until the backend's circuit breaker lets a call through again (None:
    unknown, retry soon); answered as `Retry-After`.
    """

    code = "backend_unavailable"

    def __init__(self, kind: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after

    @property
    def error_code(self) -> str:
        return f"{self.kind}.backend_unavailable"

    def details(self) -> dict[str, object]:
        return {"resource_kind": self.kind}


class MissingToken(SpineError):
    """No bearer token on a route that needs one."""

    code = "auth.missing_token"


class InvalidToken(SpineError):
    """A token that is malformed, expired, badly signed, or from another issuer or audience."""

    code = "auth.invalid_token"


class TicketExpired(SpineError):
    """A stream ticket past its expiry. Not `InvalidToken`: the client did nothing wrong, it asks
    for a new ticket and resumes from its last event id."""

    code = "auth.ticket_expired"

    def __init__(self, expired_at: datetime) -> None:
        super().__init__(
            f"the stream ticket expired at {expired_at.isoformat()}; "
            "ask POST /v1/stream-tickets for a new one and resume from the last event id"
        )
        self.expired_at = expired_at


class IdentityOverride(SpineError):
    """A header or payload field that disagrees with the token or the tenant record."""

    code = "auth.identity_override"

    _HEADERS: ClassVar[dict[str, str]] = {
        "tenant_id": "X-Tenant-Id",
        "user_id": "X-User-Id",
        "mode": "X-Mode",
        "env": "X-Env",
        "project_id": "X-Project-Id",  # these three only where a stream ticket chose them
        "surface_id": "X-Surface-Id",
        "app_id": "X-App-Id",
    }

    def __init__(self, field: str, source: str, sent: str, actual: str | None) -> None:
        where = f"header {self._HEADERS.get(field, field)}" if source == "header" else f"body field {field!r}"
        truth = "the tenant record" if field == "mode" else "the token and the request's context"
        super().__init__(f"{where} disagrees with {truth}; identity comes from the token")
        self.field = field
        self.source = source
        self.sent = sent
        self.actual = actual

    def details(self) -> dict[str, object]:
        return {"field": self.field, "source": self.source}


class DuplicateIdentity(IdentityOverride):
    """An identity header sent more than once (two lines, or one line with a comma, as HTTP joins
    them). Which value counts would be a guess (proxies and frameworks pick differently), so none
    does: refused like a header that disagrees, even when the values are equal."""

    def __init__(self, field: str, header: str, sent: list[str], actual: str | None) -> None:
        super().__init__(field, "header", ", ".join(sent), actual)
        self.message = f"header {header} is sent more than once; send it once, with one value"
        self.args = (self.message,)


class NotMember(SpineError):
    """The token's user is not a member of the tenant it names."""

    code = "auth.not_member"


class Forbidden(SpineError):
    """A member without the role the action needs."""

    code = "auth.forbidden"


class BootstrapRefused(SpineError):
    """Bootstrap without the right key, or with no key configured (the endpoint is then disabled)."""

    code = "auth.bootstrap_refused"


class MintingDisabled(SpineError):
    """A deployment without a token key mints no tokens (its users' tokens come from an issuer)."""

    code = "auth.minting_disabled"


class UnknownContext(SpineError):
    """A project, surface or app id the tenant does not have."""

    def __init__(self, kind: str, value: str) -> None:
        super().__init__(f"unknown {kind} {value!r}")
        self.kind = kind
        self.value = value

    @property
    def error_code(self) -> str:
        return f"context.unknown_{self.kind}"

    def details(self) -> dict[str, object]:
        return {"field": f"{self.kind}_id"}


class NotFound(SpineError):
    """A control-plane record (tenant, mode, …) that does not exist."""

    def __init__(self, kind: str, value: str) -> None:
        super().__init__(f"{kind} {value!r} does not exist")
        self.kind = kind

    @property
    def error_code(self) -> str:
        return f"{self.kind}.not_found"


class AlreadyExists(SpineError):
    """A control-plane record created twice."""

    code = "control_plane.already_exists"

    def __init__(self, kind: str, value: str) -> None:
        super().__init__(f"{kind} {value!r} already exists")
        self.kind = kind
        self.value = value

    def details(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.value}


class MissingRoute(SpineError):
    """No route for a resource kind where the tenant's mode does not allow the lab fallback."""

    # `tabular_store` (saves, strategy locks) answers with the save store's code
    _CODES: ClassVar[dict[str, str]] = {"tabular_store": "save_store.missing_route"}

    def __init__(self, kind: str, tenant_id: str, env: str, project_id: str) -> None:
        super().__init__(f"no {kind} route for tenant {tenant_id!r}, env {env!r}, project {project_id!r}")
        self.kind = kind

    @property
    def error_code(self) -> str:
        return self._CODES.get(self.kind, f"{self.kind}.missing_route")

    def details(self) -> dict[str, object]:
        return {"resource_kind": self.kind}


class ForbiddenBackend(SpineError):
    """An embedded backend (memory, sqlite) written for a tenant whose mode refuses it."""

    code = "routing.forbidden_backend"

    def __init__(self, kind: str, backend: str, mode: str) -> None:
        super().__init__(
            f"{backend!r} may not hold {kind} for a {mode!r} tenant: embedded stores are lab only"
        )
        self.kind = kind
        self.backend = backend
        self.mode = mode

    def details(self) -> dict[str, object]:
        return {"resource_kind": self.kind, "backend_type": self.backend, "mode": self.mode}


class ForbiddenRoute(ForbiddenBackend):
    """The same refusal at resolution time: the route exists, but this tenant may not use it."""


class InvalidSecretRef(SpineError):
    """A secret reference that is malformed, or of a kind this deployment does not allow.

    The message names the reference (references are not secrets), never a value.
    """

    code = "secret.invalid_ref"

    def __init__(self, ref: str, reason: str) -> None:
        # A string without the scheme may be a secret pasted where its reference belongs: not echoed.
        shown = ref if ref.startswith("secret://") else None
        what = f"invalid secret reference {shown!r}" if shown is not None else "not a secret reference"
        super().__init__(f"{what}: {reason}")
        self.ref = shown
        self.reason = reason

    def details(self) -> dict[str, object]:
        return {"ref": self.ref}


class SecretUnavailable(SpineError):
    """A well-formed secret reference whose value could not be read (missing, unreadable, unreachable).

    The message names the reference and why, never the value nor the content read.
    """

    code = "secret.unavailable"

    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(f"secret {ref!r} is unavailable: {reason}")
        self.ref = ref
        self.reason = reason

    def details(self) -> dict[str, object]:
        return {"ref": self.ref}


class SecretInConfig(InvalidRequest):
    """A route config (or backend URL) value that holds a secret instead of a `secret://` reference:
    credentials in a URL, a secret-looking query parameter, a value under a secret-looking key.

    The message names where the value is (`config.endpoint_url`), never the value.
    """

    code = "routing.secret_in_config"

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key} looks like a secret ({reason}): pass a secret:// reference, never a value")
        self.key = key
        self.reason = reason

    def details(self) -> dict[str, object]:
        return {"key": self.key}


class ForbiddenSecretRef(InvalidRequest):
    """A route's secret reference that is malformed, names Spine's own secrets (`SPINE_*`
    variables, its key files), or a file outside the configured secrets directory."""

    code = "routing.invalid_secret_ref"

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason

    def details(self) -> dict[str, object]:
        return {"key": self.key}


class NotReady(SpineError):
    """Outside lab, the service is not ready while a platform-default route is missing."""

    code = "routing.not_ready"

    def __init__(self, env: str, missing: list[str]) -> None:
        super().__init__(f"no platform-default route in env {env!r} for: {', '.join(missing)}")
        self.missing = missing

    def details(self) -> dict[str, object]:
        return {"missing_routes": self.missing}


class ProjectionLagging(SpineError):
    """A read asked for `X-Spine-Min-Position` and the view did not reach it in time."""

    code = "projection.lagging"

    def __init__(self, projection: str, wanted: int, reached: int) -> None:
        super().__init__(f"the {projection} view is at position {reached}, not yet at {wanted}; retry")
        self.wanted = wanted
        self.reached = reached

    def details(self) -> dict[str, object]:
        return {"min_position": self.wanted, "view_position": self.reached}


class RequestTimeout(SpineError):
    """A request body that stalled longer than the body timeout between two chunks (a slow client)."""

    code = "request.timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body stalled for more than {seconds:g} s; the connection is closed")
        self.seconds = seconds


class TooManyConcurrent(SpineError):
    """A tenant already has as many requests in flight, or SSE followers open, as its cap allows."""

    def __init__(self, what: str, tenant_id: str, limit: int) -> None:
        super().__init__(f"tenant {tenant_id!r} has {limit} {what} open, the most allowed; retry later")
        self.what = what
        self.limit = limit

    @property
    def error_code(self) -> str:
        return f"concurrency.too_many_{self.what}"

    def details(self) -> dict[str, object]:
        return {"limit": self.limit}


class AppConflict(VersionConflict):
    """An app write whose `If-Match` names a version the app is no longer (or not yet) at: another
    writer changed it since it was read, so replacing it would lose that change."""

    code = "app.version_conflict"


class RouteConflict(VersionConflict):
    """A route write whose `expected_version` is not the route's version (0: no route): another
    operator changed the route since it was read, and a switch decided on what they replaced
    would undo theirs unseen."""

    code = "routing.version_conflict"


class BlackboardConflict(VersionConflict):
    """A blackboard write whose expected version is not the entry's current one."""

    code = "blackboard.version_conflict"


class BlackboardNotFound(SpineError):
    code = "blackboard.not_found"

    def __init__(self, run_id: str, key: str) -> None:
        super().__init__(f"run {run_id!r} has no blackboard entry {key!r}")
        self.run_id = run_id
        self.key = key

    def details(self) -> dict[str, object]:
        return {"run_id": self.run_id, "key": self.key}


class BudgetExceeded(SpineError):
    """A usage that would take a total past a hard limit; decided on the budget stream."""

    code = "budget.exceeded"

    def __init__(self, unit: str, period: str, limit: float, used: float, amount: float) -> None:
        super().__init__(
            f"a usage of {amount:g} {unit} would pass the hard {period} limit of {limit:g} ({used:g} used)"
        )
        self.unit = unit
        self.period = period
        self.limit = limit
        self.used = used
        self.amount = amount

    def details(self) -> dict[str, object]:
        return {"unit": self.unit, "period": self.period, "limit": self.limit, "used": self.used,
                "amount": self.amount}  # fmt: skip


class AuditAppendOnly(SpineError):
    """A change or removal of audit records: the audit trail is append-only."""

    code = "audit.append_only"

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"the audit trail is append-only: {method} is not allowed, only {', '.join(allowed)}"
        )
        self.method = method
        self.allowed = allowed

    def details(self) -> dict[str, object]:
        return {"method": self.method, "allowed": list(self.allowed)}


class AuditNotFound(SpineError):
    """No audit record with this id in the caller's project."""

    code = "audit.not_found"

    def __init__(self, record_id: str) -> None:
        super().__init__(f"no audit record {record_id!r} in this project")
        self.record_id = record_id

    def details(self) -> dict[str, object]:
        return {"id": self.record_id}


class SaveConflict(VersionConflict):
    """A save write whose expected version (`If-Match`) is not the save's, or a create of an id
    that exists (its history is kept, deleted or not)."""

    code = "save_store.version_conflict"


class SaveNotFound(SpineError):
    """No live save: never created (`version` null), or deleted (`deleted`, the tombstone's version)."""

    code = "save_store.not_found"

    def __init__(self, kind: str, save_id: str, *, deleted: bool = False, version: int | None = None) -> None:
        state = f"was deleted at version {version}" if deleted else "does not exist"
        super().__init__(f"{kind} save {save_id!r} {state}")
        self.kind = kind
        self.save_id = save_id
        self.deleted = deleted
        self.version = version

    def details(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.save_id, "deleted": self.deleted, "version": self.version}


class SaveVersionNotFound(SpineError):
    """A version number the save's history does not (yet) have."""

    code = "save_store.version_not_found"

    def __init__(self, kind: str, save_id: str, version: int, latest: int) -> None:
        super().__init__(f"{kind} save {save_id!r} has versions 1 to {latest}, not {version}")
        self.kind = kind
        self.save_id = save_id
        self.version = version
        self.latest = latest

    def details(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.save_id, "version": self.version, "latest_version": self.latest}


class UnknownSaveKind(SpineError):
    """A saves path naming a kind other than flows, graphs or overlays."""

    code = "save_store.unknown_kind"

    def __init__(self, kind: str, kinds: list[str]) -> None:
        super().__init__(f"saves are {', '.join(kinds)}; there are no {kind[:40]!r}")
        self.kinds = kinds

    def details(self) -> dict[str, object]:
        return {"kinds": self.kinds}


class StrategyLockConflict(VersionConflict):
    """A snapshot whose expected version (`If-Match`) is not the lock's latest."""

    code = "strategy_lock.version_conflict"


class StrategyLockNotFound(SpineError):
    """A strategy lock with no snapshot yet."""

    code = "strategy_lock.not_found"

    def __init__(self, lock_id: str) -> None:
        super().__init__(f"strategy lock {lock_id!r} has no snapshot")
        self.lock_id = lock_id

    def details(self) -> dict[str, object]:
        return {"id": self.lock_id}


class SeoConfigConflict(VersionConflict):
    """An SEO config write whose expected version (`If-Match`) is not the page config's current one."""

    code = "seo_config.version_conflict"


class SeoConfigNotFound(SpineError):
    """No SEO config for this page in the caller's (app, surface): never saved, or deleted."""

    code = "seo_config.not_found"

    def __init__(self, page: str) -> None:
        super().__init__(f"no SEO config for page {page!r} in this app and surface")
        self.page = page

    def details(self) -> dict[str, object]:
        return {"page": self.page}


class FlagConflict(VersionConflict):
    """A feature flag write whose expected version (`If-Match`) is not the flag's current one."""

    code = "feature_flags.version_conflict"


class FlagNotFound(SpineError):
    """No live feature flag under this key in the project: never written (`version` null), or
    deleted (`deleted`, the deletion's version)."""

    code = "feature_flags.not_found"

    def __init__(self, key: str, *, deleted: bool = False, version: int | None = None) -> None:
        state = f"was deleted at version {version}" if deleted else "does not exist"
        super().__init__(f"feature flag {key!r} {state}")
        self.key = key
        self.deleted = deleted
        self.version = version

    def details(self) -> dict[str, object]:
        return {"key": self.key, "deleted": self.deleted, "version": self.version}


class InvalidFlagValue(InvalidRequest):
    """A flag's default or a rule's value that is not of the flag's type, or too large."""

    code = "feature_flags.invalid_value"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field

    def details(self) -> dict[str, object]:
        return {"field": self.field}


class PageContentConflict(VersionConflict):
    """A page content write whose expected version (`If-Match`) is not the page's current one."""

    code = "page_content.version_conflict"


class PageNotFound(SpineError):
    """A page of the caller's app and surface without what was asked: no content at all, or no draft."""

    code = "page_content.not_found"

    def __init__(self, page: str, *, what: str = "content") -> None:
        super().__init__(f"page {page!r} has no {what} in this app and surface")
        self.page = page

    def details(self) -> dict[str, object]:
        return {"page": self.page}


class PageNotPublished(SpineError):
    """A page never published in the caller's app and surface (it may have drafts)."""

    code = "page_content.not_published"

    def __init__(self, page: str) -> None:
        super().__init__(f"page {page!r} has never been published in this app and surface")
        self.page = page

    def details(self) -> dict[str, object]:
        return {"page": self.page}


class PageVersionNotFound(SpineError):
    """A version number the page's history does not (yet) have."""

    code = "page_content.version_not_found"

    def __init__(self, page: str, version: int, latest: int) -> None:
        super().__init__(f"page {page!r} has versions 1 to {latest}, not {version}")
        self.page = page
        self.version = version
        self.latest = latest

    def details(self) -> dict[str, object]:
        return {"page": self.page, "version": self.version, "latest_version": self.latest}


class NoDraftToPublish(SpineError):
    """A publish that names no version, of a page that has content but no draft (only direct
    publishes): there is nothing to publish."""

    code = "page_content.no_draft"

    def __init__(self, page: str, latest: int) -> None:
        super().__init__(f"page {page!r} has no draft to publish (save one, or PUT the content)")
        self.page = page
        self.latest = latest

    def details(self) -> dict[str, object]:
        return {"page": self.page, "latest_version": self.latest}


class NotADraft(SpineError):
    """A publish naming a version of the page that is a published one, not a draft."""

    code = "page_content.not_a_draft"

    def __init__(self, page: str, version: int, change: str) -> None:
        super().__init__(f"version {version} of page {page!r} is not a draft ({change}); publish a draft")
        self.page = page
        self.version = version
        self.change = change

    def details(self) -> dict[str, object]:
        return {"page": self.page, "version": self.version, "change": self.change}


class NotAPublishedVersion(SpineError):
    """A rollback to a version of the page that was never published (a draft)."""

    code = "page_content.not_a_published_version"

    def __init__(self, page: str, version: int, change: str) -> None:
        super().__init__(
            f"version {version} of page {page!r} was never published ({change}); roll back to a published one"
        )
        self.page = page
        self.version = version
        self.change = change

    def details(self) -> dict[str, object]:
        return {"page": self.page, "version": self.version, "change": self.change}


class TableConflict(VersionConflict):
    """A table definition or row write whose expected version (`If-Match`) is not the current one."""

    code = "tabular.version_conflict"


class TableRowNotFound(SpineError):
    """No live row: never written (`version` null), or deleted (`deleted`, the tombstone's version)."""

    code = "tabular.not_found"

    def __init__(self, table: str, key: str, *, deleted: bool = False, version: int | None = None) -> None:
        state = f"was deleted at version {version}" if deleted else "does not exist"
        super().__init__(f"row {key!r} of table {table!r} {state}")
        self.table = table
        self.key = key
        self.deleted = deleted
        self.version = version

    def details(self) -> dict[str, object]:
        return {"table": self.table, "key": self.key, "deleted": self.deleted, "version": self.version}


class TableRowVersionNotFound(SpineError):
    """A version number the row's history does not (yet) have."""

    code = "tabular.version_not_found"

    def __init__(self, table: str, key: str, version: int, latest: int) -> None:
        super().__init__(f"row {key!r} of table {table!r} has versions 1 to {latest}, not {version}")
        self.table = table
        self.key = key
        self.version = version
        self.latest = latest

    def details(self) -> dict[str, object]:
        return {"table": self.table, "key": self.key, "version": self.version, "latest_version": self.latest}


class TableNotFound(SpineError):
    """A table never defined (its rows may exist: a table needs no definition to hold rows)."""

    code = "tabular.table_not_found"

    def __init__(self, table: str) -> None:
        super().__init__(f"table {table!r} has no definition")
        self.table = table

    def details(self) -> dict[str, object]:
        return {"table": self.table}


class TableSchemaInvalid(InvalidRequest):
    """A table's JSON Schema that is no valid schema, too large, or whose `$ref` cannot be resolved
    without fetching anything. `field` is a JSON pointer into the request body (`/schema/type`)."""

    code = "tabular.invalid_schema"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def details(self) -> dict[str, object]:
        return {"field": self.field, "reason": self.reason}


class TableSchemaViolation(InvalidRequest):
    """A row value the table's JSON Schema refuses: `field` points into the request body
    (`/value/price`), `reason` is the validator's message, `keyword` the failing schema keyword."""

    code = "tabular.schema_violation"

    def __init__(self, table: str, schema_version: int, field: str, reason: str, keyword: str) -> None:
        super().__init__(f"{field}: {reason} (table {table!r}, schema of version {schema_version})")
        self.table = table
        self.schema_version = schema_version
        self.field = field
        self.reason = reason
        self.keyword = keyword

    def details(self) -> dict[str, object]:
        return {"table": self.table, "schema_version": self.schema_version, "field": self.field,
                "reason": self.reason, "keyword": self.keyword}  # fmt: skip


class KpiConflict(VersionConflict):
    """A KPI definition write whose expected version (`If-Match`) is not the definition's."""

    code = "kpi.version_conflict"


class KpiNotFound(SpineError):
    """No KPI of this name is defined in the caller's project: define it with PUT first."""

    code = "kpi.not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"no KPI {name!r} is defined in this project (PUT /v1/kpis/{name} defines it)")
        self.name = name

    def details(self) -> dict[str, object]:
        return {"name": self.name}


class KpiTimeOutOfRange(InvalidRequest):
    """A value's `at` further in the future, or further back, than a KPI accepts."""

    code = "kpi.time_out_of_range"

    def __init__(self, field: str, at: str, earliest: str, latest: str) -> None:
        super().__init__(f"{field} is {at}: a value's time must be between {earliest} and {latest}")
        self.field = field
        self.at = at
        self.earliest = earliest
        self.latest = latest

    def details(self) -> dict[str, object]:
        return {"field": self.field, "at": self.at, "earliest": self.earliest, "latest": self.latest}


class KpiRangeInvalid(InvalidRequest):
    """A series range that holds no time: `from` not before `to`, or outside the years 1 to 9999."""

    code = "kpi.invalid_range"


class KpiRangeTooLarge(InvalidRequest):
    """A series range of more buckets than one read answers: narrow it, or take larger buckets."""

    code = "kpi.range_too_large"

    def __init__(self, buckets: int, limit: int, bucket: str) -> None:
        super().__init__(
            f"the range spans {buckets} {bucket} buckets, more than {limit}: "
            "narrow from/to or take larger buckets"
        )
        self.buckets = buckets
        self.limit = limit

    def details(self) -> dict[str, object]:
        return {"buckets": self.buckets, "max_buckets": self.limit}


class KpiTooManySeries(InvalidRequest):
    """A dimension with more values than one read answers series for: pick one with `value=`."""

    code = "kpi.too_many_series"

    def __init__(self, dimension: str, limit: int) -> None:
        super().__init__(f"the KPI has more than {limit} {dimension} values: pick one with value=")
        self.dimension = dimension
        self.limit = limit

    def details(self) -> dict[str, object]:
        return {"dimension": self.dimension, "max_series": self.limit}


class RateLimitExceeded(SpineError):
    """A request over its rate limit (GCRA on the `rate_limit` backend); `retry_after` is when the
    budget holds one request again (the answer's `Retry-After`)."""

    code = "rate_limit.exceeded"

    def __init__(self, route_class: str, limit: int, window_seconds: int, retry_after: float) -> None:
        super().__init__(
            f"over the {route_class} rate limit of {limit} requests per {window_seconds} s; retry later"
        )
        self.route_class = route_class
        self.limit = limit
        self.window_seconds = window_seconds
        self.retry_after = retry_after

    def details(self) -> dict[str, object]:
        return {"route_class": self.route_class, "limit": self.limit, "window_seconds": self.window_seconds}


class ObjectTooLarge(SpineError):
    """An object past its tenant's size limit (or the service's own): refused as the bytes arrive,
    with nothing left in the backend."""

    code = "object.too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the object is larger than the {limit} bytes allowed")
        self.limit = limit

    def details(self) -> dict[str, object]:
        return {"max_bytes": self.limit}


class BlobMissing(SpineError):
    """No blob under a name in the object store (deleted, or an upload that never completed)."""

    code = "object.not_found"

    def __init__(self, name: str) -> None:
        super().__init__("no such object")
        self.name = name  # the backend's name: never shown, it holds the tenant's prefix


class ObjectNotFound(SpineError):
    """No object under a key of the partition: never stored, or deleted (`version`: the deletion's)."""

    code = "object.not_found"

    def __init__(self, key: str, *, version: int | None = None) -> None:
        state = "does not exist" if version is None else f"was deleted at version {version}"
        super().__init__(f"object {key!r} {state}")
        self.key = key
        self.version = version

    def details(self) -> dict[str, object]:
        return {"key": self.key, "deleted_version": self.version}


class ObjectConflict(VersionConflict):
    """An object write or delete whose `If-Match` is not the object's current version."""

    code = "object.version_conflict"


class ObjectQuotaExceeded(SpineError):
    """An upload that would take the partition's stored bytes past the tenant's `max_total_bytes`
    (as the object index counts them): refused, with nothing left in the backend."""

    code = "object.quota_exceeded"

    def __init__(self, limit: int, used: int) -> None:
        super().__init__(
            f"the project's objects would take more than the {limit} bytes allowed ({used} used)"
        )
        self.limit = limit
        self.used = used

    def details(self) -> dict[str, object]:
        return {"max_total_bytes": self.limit, "used_bytes": self.used}


class RangeNotSatisfiable(SpineError):
    """A `Range` none of whose bytes the object has (RFC 9110 §15.5.17): answered with
    `Content-Range: bytes */size`."""

    code = "object.range_not_satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(f"the range asks for no byte of an object of {size} bytes")
        self.size = size

    def details(self) -> dict[str, object]:
        return {"size": self.size}


class UploadNotFound(SpineError):
    """An upload id that names no upload of this object: not one Spine issued for its key and
    partition, or one whose bytes never reached the store."""

    code = "object.upload_not_found"


class ObjectUrlExpired(SpineError):
    """An upload or download URL of Spine's own, past its expiry: ask for a new one."""

    code = "object.url_expired"

    def __init__(self, expired_at: datetime) -> None:
        super().__init__(f"the URL expired at {expired_at.isoformat()}; ask for a new one")
        self.expired_at = expired_at


class BodyIncomplete(SpineError):
    """The client went away before its whole body arrived: nothing it sent is kept (its answer
    reaches nobody, but the access log says why the request ended)."""

    code = "request.incomplete"

    def __init__(self) -> None:
        super().__init__("the connection closed before the whole body arrived")


class ThreadNotFound(SpineError):
    """No thread (or canvas) with that id in the project."""

    code = "realtime.not_found"

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"no {kind} {ident!r} in this project")
        self.kind = kind
        self.ident = ident

    def details(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.ident}


class ThreadExists(SpineError):
    """Creating a thread (or canvas) under an id the project already has: an id is created once."""

    code = "realtime.already_exists"

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} exists already; an id is created once")
        self.kind = kind
        self.ident = ident

    def details(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.ident}


class ThreadConflict(VersionConflict):
    """A registry change whose expected version (`If-Match`) is not the thread's registry version."""

    code = "realtime.version_conflict"


class NotThreadOwner(SpineError):
    """A registry change by someone who does not own the thread (a tenant admin may only transfer
    its ownership)."""

    code = "realtime.not_owner"

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"only the owner of {kind} {ident!r} may change it")
        self.kind = kind
        self.ident = ident

    def details(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.ident}


class NotThreadMember(SpineError):
    """Reading or posting to a thread the caller is not a member of."""

    code = "realtime.not_member"

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"only the members of {kind} {ident!r} may read it or post to it")
        self.kind = kind
        self.ident = ident

    def details(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.ident}


class ThreadArchived(SpineError):
    """A change or a message for an archived thread: it is read-only for good."""

    code = "realtime.archived"

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} is archived: it takes no change and no message")
        self.kind = kind
        self.ident = ident

    def details(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.ident}


class OwnerNotRemovable(SpineError):
    """Removing the thread's owner from its members: transfer the ownership first (the same PATCH
    may do both, the transfer applies first)."""

    code = "realtime.owner_not_removable"

    def __init__(self, kind: str, ident: str, owner: str) -> None:
        super().__init__(f"{owner!r} owns {kind} {ident!r}: transfer the ownership before removing them")
        self.kind = kind
        self.ident = ident
        self.owner = owner

    def details(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.ident, "owner": self.owner}


class TooManyMembers(InvalidRequest):
    """A thread whose members would be more than a thread holds."""

    code = "realtime.too_many_members"

    def __init__(self, kind: str, ident: str, limit: int) -> None:
        super().__init__(f"{kind} {ident!r} would have more than {limit} members")
        self.kind = kind
        self.ident = ident
        self.limit = limit

    def details(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.ident, "max_members": self.limit}
