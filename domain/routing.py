"""The routing registry: where each tenant's data lives is data, not code.

A route maps (resource kind, tenant, env, project) to a backend and its config. Routes are
events in the system partition; `Registry` is their projection. Resolution goes from the exact
project to the tenant-wide route (`project_id="*"`) to the platform default (`tenant_id="*"`),
each an explicit record. The mode rules live here: `saas`, `enterprise` and `system` tenants
never get an embedded backend (memory, sqlite) and never fall back to one; `lab` warns and uses
the embedded lab store when a route is missing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal, cast

import msgspec

from domain.control_plane import Decision
from domain.errors import (
    ForbiddenBackend,
    ForbiddenRoute,
    ForbiddenSecretRef,
    InvalidRequest,
    MissingRoute,
    NotFound,
    RouteConflict,
)
from domain.events import Event, NewEvent
from domain.identifiers import IDENTIFIER_PATTERN, Env
from domain.secrets import NO_SECRET_FILES, SecretFiles, check_secrets, is_secret_ref, redact
from domain.timeouts import timeouts_of

ResourceKind = Literal[
    "event_spine",
    "memory_store",
    "blackboard_store",
    "analytics_store",
    "seo_config_store",
    "budget_store",
    "audit",
    "tabular_store",
    "feature_flags",
    "kpi_store",
    "page_content_store",
    "rate_limit",
    "object_store",
    "realtime_registry",
    "key_store",
]
RESOURCE_KINDS: Final[tuple[str, ...]] = ResourceKind.__args__  # type: ignore[attr-defined]
# Outside lab, readiness needs a platform default for these. Kinds added later are optional: an
# upgrade must not take a deployment out of rotation for a service it does not use; a request to
# one without a route is still refused (503 `<kind>.missing_route`) and diagnostics shows it missing.
REQUIRED_KINDS: Final[tuple[str, ...]] = RESOURCE_KINDS[: RESOURCE_KINDS.index("tabular_store") + 1]
BackendType = Literal[
    "sqlite", "memory", "dynamodb", "firestore", "cosmos", "redis", "s3", "azure_blob", "filesystem"
]
# Backends on the service's own machine: lab only (the filesystem one keeps objects under the data dir).
EMBEDDED: Final = frozenset({"sqlite", "memory", "filesystem"})
# Backends that hold bytes, not events or views: they serve the object store and nothing else.
BLOB_BACKENDS: Final = frozenset({"s3", "azure_blob", "filesystem"})
# Kinds only some backends serve: a route naming another could never be opened.
SERVED_BY: Final[dict[str, frozenset[str]]] = {
    "rate_limit": frozenset({"redis"}),
    "object_store": BLOB_BACKENDS,
}
WILDCARD: Final = "*"
LAB_MODE: Final = "lab"
_REQUIRED_CONFIG: Final[dict[str, tuple[str, ...]]] = {
    "sqlite": ("path",),
    "memory": (),
    "dynamodb": ("table", "region"),
    "firestore": ("project",),
    "cosmos": ("endpoint", "database", "key"),
    "redis": ("url",),
    "s3": ("bucket", "region"),
    "azure_blob": ("account_url", "container"),
    "filesystem": ("path",),
}
# a tenant or project id, or `*` (tenant-wide, platform default)
SCOPE_PATTERN: Final = rf"({IDENTIFIER_PATTERN})|^\*$(?!\n)"
Scope = Annotated[str, msgspec.Meta(pattern=SCOPE_PATTERN)]


class Route(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    resource_kind: ResourceKind
    tenant_id: Scope
    env: Env
    project_id: Scope = WILDCARD
    backend_type: BackendType
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    secret_refs: dict[str, str] = msgspec.field(default_factory=dict)
    tier: str | None = None
    cost_notes: str | None = None
    previous_backend_type: str | None = None
    switch_rationale: str | None = None
    last_switch_time: datetime | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.resource_kind, self.tenant_id, self.env, self.project_id)

    def redacted(self) -> Route:
        """This route as answers and logs show it: a record stored before secrets were refused in
        configs may hold one (`http://user:pw@host`), and is shown with it as ``***``."""
        return msgspec.structs.replace(
            self,
            config=cast(dict[str, Any], redact(self.config)),
            secret_refs=cast(dict[str, str], redact(self.secret_refs, secret=True)),
            tier=_shown(self.tier),
            cost_notes=_shown(self.cost_notes),
            switch_rationale=_shown(self.switch_rationale),
        )

    def same_backend(self, other: Route) -> bool:
        return (self.backend_type, self.config, self.secret_refs) == (
            other.backend_type,
            other.config,
            other.secret_refs,
        )


class RouteDeleted(msgspec.Struct, frozen=True, kw_only=True):
    resource_kind: ResourceKind
    tenant_id: Scope
    env: Env
    project_id: Scope
    rationale: str | None = None


class RouteChange(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a route's history, as `GET /v1/routes/history` shows it."""

    position: int
    at: datetime
    action: Literal["set", "deleted"]
    route: Route | None = None
    key: tuple[str, str, str, str]
    actor: str | None = None
    rationale: str | None = None

    def redacted(self) -> RouteChange:
        """This change as answers show it (`Route.redacted`)."""
        route = None if self.route is None else self.route.redacted()
        return msgspec.structs.replace(self, route=route, rationale=_shown(self.rationale))


def _shown(text: str | None) -> str | None:
    return None if text is None else cast(str, redact(text))


HANDLES: Final = frozenset({"route.set", "route.deleted"})


class Resolution(msgspec.Struct, frozen=True, kw_only=True):
    """A resolved route, or (lab only) none with the warning code the response carries."""

    route: Route | None
    warning: str | None = None


class Registry:
    """The projection of `route.set` and `route.deleted`."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str, str, str], Route] = {}
        self.history: list[RouteChange] = []
        # each route's stream version: a change expects it, so of two racing changes the second
        # is decided again on the first's outcome (and its switch audited), never lost
        self.versions: dict[tuple[str, str, str, str], int] = {}

    def apply(self, event: Event) -> None:
        if event.type == "route.set":
            route = msgspec.convert(event.data, Route)
            previous = self.routes.get(route.key)
            # A route carries the rationale of its last switch; a change that is no switch has none.
            switched = previous is None or route.last_switch_time != previous.last_switch_time
            self.routes[route.key] = route
            self.versions[route.key] = event.version
            self.history.append(
                RouteChange(
                    position=event.position,
                    at=event.recorded_at,
                    action="set",
                    route=route,
                    key=route.key,
                    actor=event.meta.user_id,
                    rationale=route.switch_rationale if switched else None,
                )
            )
        elif event.type == "route.deleted":
            deleted = msgspec.convert(event.data, RouteDeleted)
            key = (deleted.resource_kind, deleted.tenant_id, deleted.env, deleted.project_id)
            self.routes.pop(key, None)
            self.versions[key] = event.version
            self.history.append(
                RouteChange(
                    position=event.position,
                    at=event.recorded_at,
                    action="deleted",
                    key=key,
                    actor=event.meta.user_id,
                    rationale=deleted.rationale,
                )
            )

    def version_of(self, key: tuple[str, str, str, str]) -> int:
        """The version of the route at `key` as answers show it: 0 when there is none (never
        written, or deleted), what a write that means to create it expects."""
        return self.versions[key] if key in self.routes else 0

    def lookup(self, kind: str, tenant_id: str, env: str, project_id: str) -> Route | None:
        """Exact project, then tenant-wide, then platform default."""
        for key in (
            (kind, tenant_id, env, project_id),
            (kind, tenant_id, env, WILDCARD),
            (kind, WILDCARD, env, WILDCARD),
        ):
            route = self.routes.get(key)
            if route is not None:
                return route
        return None


def resolve(
    registry: Registry, kind: str, tenant_id: str, env: str, project_id: str, mode: str
) -> Resolution:
    """The route a request uses, under its tenant's mode rules."""
    route = registry.lookup(kind, tenant_id, env, project_id)
    if route is None:
        if mode == LAB_MODE:
            return Resolution(route=None, warning=MissingRoute(kind, tenant_id, env, project_id).error_code)
        raise MissingRoute(kind, tenant_id, env, project_id)
    if route.backend_type in EMBEDDED and mode != LAB_MODE:
        raise ForbiddenRoute(kind, route.backend_type, mode)
    return Resolution(route=route)


def missing_platform_defaults(registry: Registry, env: str) -> list[str]:
    """The required kinds without a platform-default route in `env`: outside lab, not ready."""
    return [kind for kind in REQUIRED_KINDS if (kind, WILDCARD, env, WILDCARD) not in registry.routes]


def routed_envs(registry: Registry, tenant_id: str) -> set[str]:
    """The envs a route names for `tenant_id`, its own or a platform default: envs an operator declared."""
    return {route.env for route in registry.routes.values() if route.tenant_id in (tenant_id, WILDCARD)}


def check_config(
    backend_type: BackendType, config: dict[str, Any], *, files: SecretFiles | None = NO_SECRET_FILES
) -> None:
    """A backend's config names what it needs, and holds no secret (`check_secrets`): a secret only
    as a `secret://` reference, never one of Spine's own. `files` None leaves the confinement of
    file references to the resolver."""
    missing = [name for name in _REQUIRED_CONFIG[backend_type] if name not in config]
    if missing:
        raise InvalidRequest(f"a {backend_type} route needs config {missing}")
    check_secrets(config, "config", files=files)
    timeouts_of(config)  # `connect_timeout_seconds`, `request_timeout_seconds`: numbers of seconds


def decide_route(
    registry: Registry,
    route: Route,
    *,
    mode: str | None,
    now: datetime,
    files: SecretFiles = NO_SECRET_FILES,
    expected: int | None = None,
) -> tuple[Decision, Route | None]:
    """The `route.set` event for `route`, and the route it replaces (for the switch audit).

    `mode` is the tenant's (None for a platform default, which every mode may inherit: the
    resolution-time rule then refuses it to the modes that may not use it). `files` is where
    the deployment's secret files may be (default: nowhere). `expected` is the route's version
    the writer read (`Registry.version_of`; 0: no route yet): any other is `RouteConflict`.
    """
    check_config(route.backend_type, route.config, files=files)
    served_by = SERVED_BY.get(route.resource_kind)
    if served_by is not None and route.backend_type not in served_by:
        raise InvalidRequest(f"a {route.resource_kind} route needs a backend of {sorted(served_by)}")
    if route.backend_type in BLOB_BACKENDS and route.resource_kind != "object_store":
        raise InvalidRequest(f"a {route.backend_type} backend serves object_store routes only")
    for name, ref in route.secret_refs.items():
        if not is_secret_ref(ref):
            raise ForbiddenSecretRef(f"secret_refs.{name}", "not a secret://env|file|aws-sm/… reference")
    check_secrets(route.secret_refs, "secret_refs", files=files)
    if mode is not None and mode != LAB_MODE and route.backend_type in EMBEDDED:
        raise ForbiddenBackend(route.resource_kind, route.backend_type, mode)
    if expected is not None and expected != registry.version_of(route.key):
        raise RouteConflict(route_stream(*route.key), expected, registry.version_of(route.key))
    previous = registry.routes.get(route.key)
    if previous is not None and not previous.same_backend(route):
        route = msgspec.structs.replace(
            route, previous_backend_type=previous.backend_type, last_switch_time=now
        )
    elif previous is not None:
        route = msgspec.structs.replace(
            route,
            previous_backend_type=previous.previous_backend_type,
            last_switch_time=previous.last_switch_time,
            switch_rationale=route.switch_rationale or previous.switch_rationale,
        )
    event = NewEvent(type="route.set", data=msgspec.to_builtins(route))
    expected = registry.versions.get(route.key, 0)
    return Decision(stream=route_stream(*route.key), event=event, expected_version=expected), previous


def decide_route_delete(registry: Registry, deleted: RouteDeleted) -> Decision:
    key = (deleted.resource_kind, deleted.tenant_id, deleted.env, deleted.project_id)
    if key not in registry.routes:
        raise NotFound("route", "/".join(key))
    event = NewEvent(type="route.deleted", data=msgspec.to_builtins(deleted))
    return Decision(stream=route_stream(*key), event=event, expected_version=registry.versions[key])


def route_stream(kind: str, tenant_id: str, env: str, project_id: str) -> str:
    # `*` is not a stream character; `~` is, and no identifier starts with it.
    return ":".join(("route", kind, tenant_id, env, project_id)).replace(WILDCARD, "~")
