"""The control plane as data: modes, tenants, projects, surfaces, apps and memberships.

Every record is an event in the system partition; `ControlPlane` is their projection, rebuilt
by applying the events in order. Only `t_system` is known to code. The `decide_*` functions are
the rules for each command: they read the projection and answer the event to append, on a
stream whose `expected_version` makes a concurrent duplicate a conflict rather than a second
record. Apps also list the browser origins allowed to call Spine for their tenant (CORS): the
projection indexes them by origin.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from domain.errors import AlreadyExists, AppConflict, Forbidden, InvalidRequest, NotFound
from domain.events import NO_STREAM, Event, NewEvent
from domain.origins import Origins, unique
from domain.partition import SYSTEM_TENANT, Identifier, Partition
from domain.rate_limits import LimitsSet
from domain.retention import APPLIED as RETENTION_APPLIED
from domain.retention import SET as RETENTION_SET
from domain.retention import RetentionApplied, RetentionSet

Role = Literal["admin", "member", "agent"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
SEEDED_MODES: Final = {
    "enterprise": "dedicated backends per tenant; embedded stores refused",
    "saas": "shared managed backends; embedded stores refused",
    "lab": "embedded stores allowed; a missing route warns instead of failing",
}
DEFAULT_MODE: Final = "saas"
RESERVED_PREFIX: Final = "_"


class ModeDefined(msgspec.Struct, frozen=True, kw_only=True):
    name: Identifier
    description: str = ""
    owner: str = SYSTEM_TENANT


class TenantCreated(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: Identifier
    name: Name
    mode: Identifier = DEFAULT_MODE


class ProjectCreated(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: Identifier
    project_id: Identifier
    name: Name


class SurfaceCreated(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: Identifier
    surface_id: Identifier
    name: Name


class AppCreated(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: Identifier
    app_id: Identifier
    name: Name
    origins: Origins = []  # records stored before apps had origins decode with none


class AppUpdated(msgspec.Struct, frozen=True, kw_only=True):
    """An app's name and origins replaced (`PUT /v1/tenants/{t}/apps/{app_id}`)."""

    tenant_id: Identifier
    app_id: Identifier
    name: Name
    origins: Origins = []


class App(msgspec.Struct, frozen=True, kw_only=True):
    """An app as its latest record left it; `version` is its stream's (the ETag), `position` the
    record's in the system partition."""

    tenant_id: str
    app_id: str
    name: str
    origins: list[str]
    version: int
    position: int


class MemberSet(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: Identifier
    user_id: Identifier
    role: Role


class UserDataErased(msgspec.Struct, frozen=True, kw_only=True):
    """A user's data key destroyed (`DELETE /v1/tenants/{t}/users/{u}/data`): every process drops
    what it cached of the user's keys when it sees this. It holds no data of the user's."""

    tenant_id: Identifier
    user_id: Identifier


Record = (
    ModeDefined
    | TenantCreated
    | ProjectCreated
    | SurfaceCreated
    | AppCreated
    | AppUpdated
    | MemberSet
    | LimitsSet
    | RetentionSet
    | RetentionApplied
    | UserDataErased
)
_TYPES: Final[dict[str, type[Record]]] = {
    "mode.defined": ModeDefined,
    "tenant.created": TenantCreated,
    "project.created": ProjectCreated,
    "surface.created": SurfaceCreated,
    "app.created": AppCreated,
    "app.updated": AppUpdated,
    "member.set": MemberSet,
    "limits.set": LimitsSet,
    RETENTION_SET: RetentionSet,
    RETENTION_APPLIED: RetentionApplied,
    "user.data_erased": UserDataErased,
}
_TYPE_OF: Final = {cls: name for name, cls in _TYPES.items()}
HANDLES: Final = frozenset(_TYPES)


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """An event to append to the system partition, with the stream version it requires."""

    stream: str
    event: NewEvent
    expected_version: int | Literal["no_stream", "any"] = NO_STREAM


def _decision(
    stream: str, record: Record, expected: int | Literal["no_stream", "any"] = NO_STREAM
) -> Decision:
    data = msgspec.to_builtins(record)
    return Decision(
        stream=stream, event=NewEvent(type=_TYPE_OF[type(record)], data=data), expected_version=expected
    )


class ControlPlane:
    """The projection of the control-plane events: what exists, who belongs where."""

    def __init__(self) -> None:
        self.position = 0
        self.modes: dict[str, ModeDefined] = {}
        self.tenants: dict[str, TenantCreated] = {}
        self.projects: dict[tuple[str, str], ProjectCreated] = {}
        self.surfaces: dict[tuple[str, str], SurfaceCreated] = {}
        self.apps: dict[tuple[str, str], App] = {}
        self.members: dict[tuple[str, str], Role] = {}
        self.limits: dict[str, LimitsSet] = {}  # rate limits, by tenant
        self.retention: dict[tuple[str, str], RetentionSet] = {}  # by (tenant, project)
        self.marks: dict[str, RetentionApplied] = {}  # by partition key: each one's furthest run
        self.erasures: dict[tuple[str, str], int] = {}  # (tenant, user) → how many erasures
        self._listing: dict[str, set[tuple[str, str]]] = {}  # origin → the apps that list it

    def apply(self, event: Event) -> None:
        record_type = _TYPES.get(event.type)
        if record_type is not None:
            match msgspec.convert(event.data, record_type):
                case ModeDefined() as mode:
                    self.modes[mode.name] = mode
                case TenantCreated() as tenant:
                    self.tenants[tenant.tenant_id] = tenant
                case ProjectCreated() as project:
                    self.projects[(project.tenant_id, project.project_id)] = project
                case SurfaceCreated() as surface:
                    self.surfaces[(surface.tenant_id, surface.surface_id)] = surface
                case AppCreated() | AppUpdated() as app:
                    self._set_app(
                        App(**msgspec.structs.asdict(app), version=event.version, position=event.position)
                    )
                case MemberSet() as member:
                    self.members[(member.tenant_id, member.user_id)] = member.role
                case LimitsSet() as limits:
                    self.limits[limits.tenant_id] = limits
                case RetentionSet() as retention:
                    self.retention[(retention.tenant_id, retention.project_id)] = retention
                case RetentionApplied() as applied:
                    key = Partition(
                        tenant_id=applied.tenant_id, env=applied.env, project_id=applied.project_id
                    ).key
                    if applied.through > self.truncated_through(key):
                        self.marks[key] = applied
                case UserDataErased() as erased:
                    who = (erased.tenant_id, erased.user_id)
                    self.erasures[who] = self.erasures.get(who, 0) + 1
        self.position = max(self.position, event.position)

    def _set_app(self, app: App) -> None:
        key = (app.tenant_id, app.app_id)
        old = self.apps.get(key)
        for origin in old.origins if old is not None else ():
            listing = self._listing[origin]
            listing.discard(key)
            if not listing:
                del self._listing[origin]
        for origin in app.origins:
            self._listing.setdefault(origin, set()).add(key)
        self.apps[key] = app

    def truncated_through(self, partition_key: str) -> int:
        """How far retention may have removed events of the partition (0: never)."""
        mark = self.marks.get(partition_key)
        return 0 if mark is None else mark.through

    def tenants_listing(self, origin: str) -> set[str]:
        """The tenants with an app that lists `origin` (compared as sent: origins are strings to CORS)."""
        return {tenant for tenant, _ in self._listing.get(origin, ())}

    def erasures_of(self, tenant_id: str, user_id: str) -> int:
        """How many times the user's data was erased: a key cached under another count is stale."""
        return self.erasures.get((tenant_id, user_id), 0)

    def role_of(self, tenant_id: str, user_id: str) -> Role | None:
        return self.members.get((tenant_id, user_id))

    def is_system_admin(self, user_id: str) -> bool:
        return self.role_of(SYSTEM_TENANT, user_id) == "admin"

    def tenant(self, tenant_id: str) -> TenantCreated:
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            raise NotFound("tenant", tenant_id)
        return tenant

    def project(self, tenant_id: str, project_id: str) -> ProjectCreated:
        project = self.projects.get((self.tenant(tenant_id).tenant_id, project_id))
        if project is None:
            raise NotFound("project", project_id)
        return project

    def projects_of(self, tenant_id: str) -> list[ProjectCreated]:
        return [p for (t, _), p in sorted(self.projects.items()) if t == tenant_id]

    def surfaces_of(self, tenant_id: str) -> list[SurfaceCreated]:
        return [s for (t, _), s in sorted(self.surfaces.items()) if t == tenant_id]

    def apps_of(self, tenant_id: str) -> list[App]:
        return [a for (t, _), a in sorted(self.apps.items()) if t == tenant_id]

    def members_of(self, tenant_id: str) -> dict[str, Role]:
        return {u: role for (t, u), role in sorted(self.members.items()) if t == tenant_id}


# Commands. Each checks what it can against the projection; the stream's expected version
# settles the race between two processes that both saw "absent".


def decide_bootstrap(state: ControlPlane, admin_user_id: str) -> list[Decision]:
    """`t_system`, the seeded modes and the first admin: only what is missing, so it is idempotent."""
    decisions = [
        _decision(f"mode:{name}", ModeDefined(name=name, description=text))
        for name, text in SEEDED_MODES.items()
        if name not in state.modes
    ]
    if SYSTEM_TENANT not in state.tenants:
        decisions.append(
            _decision(
                f"tenant:{SYSTEM_TENANT}",
                TenantCreated(tenant_id=SYSTEM_TENANT, name="system", mode="system"),
            )
        )
    if not any(role == "admin" for role in state.members_of(SYSTEM_TENANT).values()):
        decisions.append(
            _decision(
                f"member:{SYSTEM_TENANT}:{admin_user_id}",
                MemberSet(tenant_id=SYSTEM_TENANT, user_id=admin_user_id, role="admin"),
                "any",
            )
        )
    return decisions


def first_admin(state: ControlPlane) -> str | None:
    admins = [user for user, role in state.members_of(SYSTEM_TENANT).items() if role == "admin"]
    return admins[0] if admins else None


def decide_tenant(state: ControlPlane, command: TenantCreated) -> Decision:
    if command.tenant_id == SYSTEM_TENANT or command.tenant_id in state.tenants:
        raise AlreadyExists("tenant", command.tenant_id)
    if command.mode not in state.modes:
        raise InvalidRequest(f"unknown mode {command.mode!r}; known: {sorted(state.modes)}")
    return _decision(f"tenant:{command.tenant_id}", command)


def decide_project(state: ControlPlane, command: ProjectCreated) -> Decision:
    state.tenant(command.tenant_id)
    if command.project_id.startswith(RESERVED_PREFIX):
        # `_` is the partition of a tenant's audit trail, and in `t_system` of the control plane
        # itself: a project there would let members write the records that grant roles.
        raise InvalidRequest(f"project ids starting with {RESERVED_PREFIX!r} are reserved for Spine")
    if (command.tenant_id, command.project_id) in state.projects:
        raise AlreadyExists("project", command.project_id)
    return _decision(f"project:{command.tenant_id}:{command.project_id}", command)


def decide_surface(state: ControlPlane, command: SurfaceCreated) -> Decision:
    state.tenant(command.tenant_id)
    if (command.tenant_id, command.surface_id) in state.surfaces:
        raise AlreadyExists("surface", command.surface_id)
    return _decision(f"surface:{command.tenant_id}:{command.surface_id}", command)


def decide_app(state: ControlPlane, command: AppCreated) -> Decision:
    state.tenant(command.tenant_id)
    if (command.tenant_id, command.app_id) in state.apps:
        raise AlreadyExists("app", command.app_id)
    return _decision(f"app:{command.tenant_id}:{command.app_id}", command)


def decide_app_put(state: ControlPlane, command: AppUpdated, expected: int | None = None) -> list[Decision]:
    """Create the app, or replace its name and origins; nothing when they are so already.

    The event expects the app's version in the view it is decided on, so a writer that decided on
    a view another writer has since changed is refused (and decides again on the new one) rather
    than replacing a record it never saw. `expected` is the version the caller read (`If-Match`;
    0: none yet): any other is `AppConflict`.
    """
    state.tenant(command.tenant_id)
    stream = f"app:{command.tenant_id}:{command.app_id}"
    current = state.apps.get((command.tenant_id, command.app_id))
    version = 0 if current is None else current.version
    if expected is not None and expected != version:
        raise AppConflict(stream, expected, version)
    record = msgspec.structs.replace(command, origins=unique(command.origins))
    if current is None:
        return [_decision(stream, AppCreated(**msgspec.structs.asdict(record)))]
    if (current.name, current.origins) == (record.name, record.origins):
        return []
    return [_decision(stream, record, version)]


def decide_member(state: ControlPlane, command: MemberSet) -> Decision:
    """Adding a member, or changing the role of one: the latest `member.set` wins."""
    state.tenant(command.tenant_id)
    return _decision(f"member:{command.tenant_id}:{command.user_id}", command, "any")


def decide_limits(state: ControlPlane, command: LimitsSet) -> list[Decision]:
    """Replace a tenant's rate limits; nothing when they are so already. Latest wins ("any"): a
    PUT states the whole of them, so no earlier state is merged that a race could lose."""
    state.tenant(command.tenant_id)
    if state.limits.get(command.tenant_id) == command:
        return []
    return [_decision(f"limits:{command.tenant_id}", command, "any")]


def decide_retention(state: ControlPlane, command: RetentionSet) -> list[Decision]:
    """Replace a project's retention rules; nothing when they are so already (latest wins, as limits)."""
    state.project(command.tenant_id, command.project_id)
    if state.retention.get((command.tenant_id, command.project_id)) == command:
        return []
    return [_decision(f"retention:{command.tenant_id}:{command.project_id}", command, "any")]


def decide_retention_applied(state: ControlPlane, applied: RetentionApplied) -> list[Decision]:
    """A run's mark, before it removes anything; a mark that moves nothing is not written again."""
    partition = Partition(tenant_id=applied.tenant_id, env=applied.env, project_id=applied.project_id)
    if state.truncated_through(partition.key) >= applied.through:
        return []
    stream = f"retention:{applied.tenant_id}:{applied.project_id}:{applied.env}"
    return [_decision(stream, applied, "any")]


def decide_erasure(state: ControlPlane, command: UserDataErased) -> Decision:
    """Record an erasure (its key is destroyed first): each request is recorded, as each is an
    act an auditor may ask about; the record holds no data of the user's."""
    state.tenant(command.tenant_id)
    return _decision(f"erasure:{command.tenant_id}:{command.user_id}", command, "any")


def require_admin(state: ControlPlane, caller_tenant: str, caller_user: str, tenant_id: str) -> None:
    """Tenant admins administer their tenant; system admins administer every tenant."""
    if state.role_of(tenant_id, caller_user) == "admin" and caller_tenant == tenant_id:
        return
    if caller_tenant == SYSTEM_TENANT and state.is_system_admin(caller_user):
        return
    raise Forbidden(f"this needs an administrator of tenant {tenant_id!r} or a system administrator")


def require_system_admin(state: ControlPlane, caller_tenant: str, caller_user: str) -> None:
    if caller_tenant != SYSTEM_TENANT or not state.is_system_admin(caller_user):
        raise Forbidden("this needs a system administrator")
