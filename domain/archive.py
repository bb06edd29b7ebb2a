"""A tenant archive: what `spine export` writes and `spine import` reads, and the rules of both.

An archive is a directory. `manifest.json` names everything else with its SHA-256 and size:
- `control_plane.jsonl.gz`: the tenant's records, one per line as `{"type", "data"}` in the
  vocabulary of the control-plane events (`tenant.created`, `project.created`, `surface.created`,
  `app.created` with the app's current name and origins, `member.set`, `limits.set`). Tokens are
  not records (they are minted, never stored), and no record holds a secret;
- `routes.jsonl.gz`: the tenant's own routes (platform defaults are the deployment's), redacted
  as `GET /v1/routes` shows them;
- `logs/<env>/<project>.jsonl.gz`: one partition's events in position order, one per line, as
  stored: personal fields sealed (`domain.personal`);
- `data_keys.jsonl.gz` (only when the tenant has any): the live data keys of its users, one per
  line as `{"user_id", "key_id", "material"}`, so the target opens the sealed fields. An erased
  user has no key, so their fields stay erased in the archive and wherever it is imported.

Every file is a pure function of the data: records and routes in key order, events in position
order, JSON with sorted keys, and the manifest's `created_at` is the time of the newest event
exported (not the clock's), so exporting the same data twice gives the same bytes.

An import takes a record when the target lacks it, and passes over one the target holds alike;
one the target holds otherwise (another name, mode, role, origins, limits or backend) is a
conflict, raised before anything is written. There is no merge: the archive states its tenant as
it was, and an operator who wants the target's version of a record keeps it by not importing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from domain.audit import AUDIT_PROJECT
from domain.control_plane import (
    AppCreated,
    ControlPlane,
    Decision,
    MemberSet,
    ProjectCreated,
    SurfaceCreated,
    TenantCreated,
    decide_app,
    decide_limits,
    decide_member,
    decide_project,
    decide_retention,
    decide_retention_applied,
    decide_surface,
    decide_tenant,
)
from domain.errors import InvalidRequest, NotFound
from domain.identifiers import Identifier
from domain.partition import SYSTEM_TENANT, Partition
from domain.rate_limits import LimitsSet
from domain.retention import RetentionApplied, RetentionSet
from domain.routing import WILDCARD, Registry, Route

FORMAT: Final = "spine.tenant-archive"
FORMAT_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
CONTROL_PLANE: Final = "control_plane.jsonl.gz"
ROUTES: Final = "routes.jsonl.gz"
DATA_KEYS: Final = "data_keys.jsonl.gz"
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]

ControlRecord = (
    TenantCreated
    | ProjectCreated
    | SurfaceCreated
    | AppCreated
    | MemberSet
    | LimitsSet
    | RetentionSet
    | RetentionApplied
)
RECORD_TYPES: Final[dict[str, type[ControlRecord]]] = {
    "tenant.created": TenantCreated,
    "project.created": ProjectCreated,
    "surface.created": SurfaceCreated,
    "app.created": AppCreated,
    "member.set": MemberSet,
    "limits.set": LimitsSet,
    "retention.set": RetentionSet,
    "retention.applied": RetentionApplied,
}
_TYPE_OF: Final = {cls: name for name, cls in RECORD_TYPES.items()}


class ArchiveInvalid(InvalidRequest):
    """An archive that cannot be imported as it is: damaged, changed since it was written, or not one."""

    code = "archive.invalid"


class ImportConflict(InvalidRequest):
    """The target holds a record or events of the tenant that differ from the archive's."""

    code = "archive.conflict"


class TargetNotBootstrapped(InvalidRequest):
    """The target deployment has no control plane to import a tenant into."""

    code = "archive.target_not_bootstrapped"


class FileEntry(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    sha256: Sha256
    bytes: Annotated[int, msgspec.Meta(ge=0)]


class PartitionEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One partition's log: `head` its last position when exported, `events` how many lines hold it."""

    env: Identifier
    project_id: Identifier
    head: Annotated[int, msgspec.Meta(ge=1)]
    events: Annotated[int, msgspec.Meta(ge=1)]
    file: str


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """`projects` None: the whole tenant (its audit trail included); `envs`: the envs looked in."""

    format: Literal["spine.tenant-archive"] = FORMAT
    format_version: int
    spine_version: str
    tenant_id: Identifier
    projects: list[Identifier] | None
    envs: list[Identifier]
    created_at: datetime | None  # the newest exported event's time; None when no log had any
    partitions: list[PartitionEntry]
    files: list[FileEntry]


class ArchivedRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One line of `control_plane.jsonl.gz`."""

    type: str
    data: dict[str, Any]

    def record(self) -> ControlRecord:
        record_type = RECORD_TYPES.get(self.type)
        if record_type is None:
            raise ArchiveInvalid(f"{CONTROL_PLANE}: {self.type!r} is no record an archive holds")
        return msgspec.convert(self.data, record_type)


class ArchivedKey(msgspec.Struct, frozen=True, kw_only=True):
    """One line of `data_keys.jsonl.gz`: a user's live data key (`material`: its 32 bytes, base64)."""

    user_id: Identifier
    key_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    material: Annotated[str, msgspec.Meta(min_length=44, max_length=44)]


def log_path(env: str, project_id: str) -> str:
    """A partition's file: its ids are identifiers, so never `/`, `.` or `..` (no path escapes)."""
    return f"logs/{env}/{project_id}.jsonl.gz"


def check_manifest(manifest: Manifest) -> None:
    """The manifest names the files an archive has, each once, and nothing outside it."""
    if manifest.format_version != FORMAT_VERSION:
        raise ArchiveInvalid(
            f"format version {manifest.format_version}: this Spine reads version {FORMAT_VERSION}"
        )
    if manifest.tenant_id == SYSTEM_TENANT:
        raise ArchiveInvalid(f"{SYSTEM_TENANT} is a deployment's own tenant, not one to import")
    paths = [entry.path for entry in manifest.files]
    keys = [DATA_KEYS] if DATA_KEYS in paths else []  # only a tenant with data keys has the file
    expected = [CONTROL_PLANE, ROUTES, *keys, *(p.file for p in manifest.partitions)]
    if sorted(paths) != sorted(expected) or len(set(paths)) != len(paths):
        raise ArchiveInvalid(f"{MANIFEST} lists {sorted(paths)}, not the files its partitions need")
    for entry in manifest.partitions:
        Partition(tenant_id=manifest.tenant_id, env=entry.env, project_id=entry.project_id)
        if entry.file != log_path(entry.env, entry.project_id):
            raise ArchiveInvalid(f"{MANIFEST}: partition {entry.env}/{entry.project_id} in {entry.file!r}")
        if entry.events > entry.head:
            raise ArchiveInvalid(f"{MANIFEST}: {entry.file} holds more events than positions")


def archived(record: ControlRecord) -> ArchivedRecord:
    return ArchivedRecord(type=_TYPE_OF[type(record)], data=msgspec.to_builtins(record))


def records_of(state: ControlPlane, tenant_id: str, projects: list[str] | None) -> list[ControlRecord]:
    """The tenant's records as they stand (an app's latest name and origins), in key order."""
    tenant = state.tenant(tenant_id)
    records: list[ControlRecord] = [tenant]
    records += [p for p in state.projects_of(tenant_id) if projects is None or p.project_id in projects]
    records += state.surfaces_of(tenant_id)
    records += [
        AppCreated(tenant_id=a.tenant_id, app_id=a.app_id, name=a.name, origins=a.origins)
        for a in state.apps_of(tenant_id)
    ]
    records += [
        MemberSet(tenant_id=tenant_id, user_id=user, role=role)
        for user, role in state.members_of(tenant_id).items()
    ]
    limits = state.limits.get(tenant_id)
    records += [] if limits is None else [limits]
    exported = {p.project_id for p in records if isinstance(p, ProjectCreated)}
    records += [
        rules for (t, p), rules in sorted(state.retention.items()) if t == tenant_id and p in exported
    ]
    # the marks: the target's readers are told what retention removed before the export, as here
    return records + [
        mark
        for _, mark in sorted(state.marks.items())
        if mark.tenant_id == tenant_id and mark.project_id in exported
    ]


def routes_of(registry: Registry, tenant_id: str, projects: list[str] | None) -> list[Route]:
    """The tenant's own routes (tenant-wide ones, and those of the exported projects), redacted."""
    return [
        route.redacted()
        for key, route in sorted(registry.routes.items())
        if route.tenant_id == tenant_id
        and (projects is None or route.project_id == WILDCARD or route.project_id in projects)
    ]


def partition_projects(state: ControlPlane, tenant_id: str, projects: list[str] | None) -> list[str]:
    """The projects whose logs an export reads: the tenant's and its audit trail, or those asked."""
    state.tenant(tenant_id)
    if projects is None:
        return [p.project_id for p in state.projects_of(tenant_id)] + [AUDIT_PROJECT]
    for project_id in projects:
        if (tenant_id, project_id) not in state.projects:
            raise NotFound("project", project_id)
    return sorted(set(projects))


def check_records(manifest: Manifest, records: list[ControlRecord]) -> TenantCreated:
    """The records are the manifest's tenant's, one of them the tenant itself (answered), and every
    log belongs to a project they create, or to the tenant's audit trail."""
    tenants = [r for r in records if isinstance(r, TenantCreated)]
    if {r.tenant_id for r in records} != {manifest.tenant_id} or len(tenants) != 1:
        raise ArchiveInvalid(
            f"{CONTROL_PLANE} must hold tenant {manifest.tenant_id!r} once, and only its records"
        )
    projects = {r.project_id for r in records if isinstance(r, ProjectCreated)} | {AUDIT_PROJECT}
    for entry in manifest.partitions:
        if entry.project_id not in projects:
            raise ArchiveInvalid(
                f"{entry.file}: project {entry.project_id!r} has no record in {CONTROL_PLANE}"
            )
    return tenants[0]


# Import: each record is taken when missing, passed over when held alike, refused otherwise.


def needed(state: ControlPlane, record: ControlRecord) -> bool:
    """Whether the target lacks `record`; `ImportConflict` when it holds it otherwise."""
    held: object
    match record:
        case TenantCreated():
            held = state.tenants.get(record.tenant_id)
        case ProjectCreated():
            held = state.projects.get((record.tenant_id, record.project_id))
        case SurfaceCreated():
            held = state.surfaces.get((record.tenant_id, record.surface_id))
        case AppCreated():
            app = state.apps.get((record.tenant_id, record.app_id))
            held = None if app is None else AppCreated(
                tenant_id=app.tenant_id, app_id=app.app_id, name=app.name, origins=app.origins
            )  # fmt: skip
        case MemberSet():
            role = state.role_of(record.tenant_id, record.user_id)
            held = None if role is None else MemberSet(
                tenant_id=record.tenant_id, user_id=record.user_id, role=role
            )  # fmt: skip
        case LimitsSet():
            held = state.limits.get(record.tenant_id)
        case RetentionSet():
            held = state.retention.get((record.tenant_id, record.project_id))
        case RetentionApplied():  # a mark only moves forward: one as far or further is held
            through = state.truncated_through(Partition(tenant_id=record.tenant_id, env=record.env,
                                                        project_id=record.project_id).key)  # fmt: skip
            return through < record.through
    if held is None:
        return True
    if held != record:
        raise ImportConflict(
            f"the target holds {_TYPE_OF[type(record)]} {_key(record)} otherwise: "
            f"{_shown(held)} there, {_shown(record)} in the archive"
        )
    return False


def decide_record(state: ControlPlane, record: ControlRecord) -> list[Decision]:
    """The event that creates `record` in the target, by the rule the API uses; none when held alike."""
    if not needed(state, record):
        return []
    match record:
        case TenantCreated():
            return [decide_tenant(state, record)]
        case ProjectCreated():
            return [decide_project(state, record)]
        case SurfaceCreated():
            return [decide_surface(state, record)]
        case AppCreated():
            return [decide_app(state, record)]
        case MemberSet():
            return [decide_member(state, record)]
        case LimitsSet():
            return decide_limits(state, record)
        case RetentionSet():
            return decide_retention(state, record)
        case RetentionApplied():
            return decide_retention_applied(state, record)


def route_needed(registry: Registry, route: Route) -> bool:
    """Whether the target lacks `route`; `ImportConflict` when it routes the key to another backend."""
    held = registry.routes.get(route.key)
    if held is None:
        return True
    if not held.redacted().same_backend(route):
        raise ImportConflict(
            f"the target routes {'/'.join(route.key)} to {held.backend_type} {_shown(held.redacted().config)}, "
            f"the archive to {route.backend_type} {_shown(route.config)}"
        )
    return False


def _key(record: ControlRecord) -> str:
    ids = [v for k, v in msgspec.structs.asdict(record).items() if k.endswith("_id")]
    return "/".join(str(i) for i in ids)


def _shown(value: object) -> str:
    shown = msgspec.json.encode(value, order="sorted").decode()
    return shown if len(shown) <= 300 else shown[:297] + "..."
