"""`/v1/projections`: how far each view is, blue-green rebuilds of a view, and the snapshots that
seed them (operators)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import anyio
import msgspec
from litestar import get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from app.http.controllers.diagnostics import tenants_in_scope
from app.http.services import Call, CallDep
from domain.errors import NotFound
from domain.identifiers import IDENTIFIER_PATTERN, VIEW_NAME_PATTERN, Env, Identifier
from domain.partition import Partition, normalize_env
from projections.catalog import VIEWS
from projections.runtime import RebuildFrom, Runner
from projections.snapshots import stored_snapshot

MAX_WAIT_SECONDS = 600.0
_VIEWS = "a view: " + ", ".join(sorted(VIEWS))
Name = Annotated[str, PathParameter(description=_VIEWS, pattern=VIEW_NAME_PATTERN)]


class RebuildStatus(msgspec.Struct, frozen=True, kw_only=True):
    generation: int | None
    state: str
    from_: RebuildFrom = msgspec.field(name="from")  # where the new generation began
    snapshot_position: int | None  # the snapshot's position, when it began from one
    position: int
    head: int
    events_per_second: float
    eta_seconds: float | None
    error: str | None


class ViewStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    tenant_id: str
    env: str
    project_id: str
    generation: int
    position: int
    head: int
    lag: int
    leading: bool
    rebuild: RebuildStatus | None
    snapshot: SnapshotStatus | None  # the valid snapshot that would seed a rebuild, if any


class SnapshotTaken(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one partition's view: `state` taken (with what it holds), taking (`?wait`
    not given), elsewhere (another process is taking it) or failed."""

    name: str
    tenant_id: str
    env: str
    project_id: str
    state: str
    position: int | None
    documents: int | None
    taken_at: datetime | None
    error: str | None


class SnapshotsAnswer(msgspec.Struct, frozen=True, kw_only=True):
    snapshots: list[SnapshotTaken]


class SnapshotStatus(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    taken_at: datetime
    documents: int


class ProjectionsAnswer(msgspec.Struct, frozen=True, kw_only=True):
    projections: list[ViewStatus]


class RebuildBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    tenant_id: Identifier | None = None
    env: Env | None = None
    project_id: Identifier | None = None


@get(
    "/v1/projections",
    opt={"context": "principal"},
    tags=["projections"],
    summary="Every view's position and lag",
)
async def projections(
    call: CallDep,
    tenant_id: Annotated[
        str | None,
        QueryParameter(description="one tenant (system admins: default all)", pattern=IDENTIFIER_PATTERN),
    ] = None,
    name: Annotated[str | None, QueryParameter(description=_VIEWS, pattern=VIEW_NAME_PATTERN)] = None,
) -> ProjectionsAnswer:
    if name is not None and name not in VIEWS:
        raise NotFound("projection", name)
    tenants = set(tenants_in_scope(call.services, call.ctx, tenant_id))
    runners = [r for r in call.services.views.runners if r.partition.tenant_id in tenants]
    if name is not None:
        runners = [r for r in runners if r.projection.name == name]
    return ProjectionsAnswer(projections=[await _status(r) for r in _ordered(runners)])


@post(
    "/v1/projections/{name:str}/rebuild",
    opt={"context": "principal"},
    status_code=202,
    tags=["projections"],
    summary="Rebuild a view beside the serving one (from its snapshot, or from position 0), then swap it in",
)
async def rebuild(
    call: CallDep,
    name: Name,
    data: JSONBody[RebuildBody | None] = None,
    wait: Annotated[bool, QueryParameter(description="answer once every rebuild has swapped in")] = False,
    from_: Annotated[
        RebuildFrom,
        QueryParameter(
            name="from",
            description="snapshot: from the partition's snapshot when one is valid, else position 0;"
            " start: from position 0",
        ),
    ] = "snapshot",
) -> ProjectionsAnswer:
    runners = await call.services.views.rebuild(name, _partitions(call, name, data), from_=from_)
    if wait:
        with anyio.move_on_after(MAX_WAIT_SECONDS):
            for runner in runners:
                assert runner.rebuild is not None
                await runner.rebuild.done.wait()
    return ProjectionsAnswer(projections=[await _status(r) for r in _ordered(runners)])


@post(
    "/v1/projections/{name:str}/snapshots",
    opt={"context": "principal"},
    status_code=202,
    tags=["projections"],
    summary="Snapshot a view's serving generation: what later rebuilds start from",
)
async def snapshot(
    call: CallDep,
    name: Name,
    data: JSONBody[RebuildBody | None] = None,
    wait: Annotated[bool, QueryParameter(description="answer once every snapshot is taken")] = False,
) -> SnapshotsAnswer:
    now = call.services.clock()
    runners = await call.services.views.snapshot(name, _partitions(call, name, data), now)
    if wait:
        with anyio.move_on_after(MAX_WAIT_SECONDS):
            for runner in runners:
                assert runner.snapshot is not None
                await runner.snapshot.done.wait()
    return SnapshotsAnswer(snapshots=[_taken(r) for r in _ordered(runners)])


def _partitions(call: Call, name: str, data: RebuildBody | None) -> list[Partition]:
    """The partitions a rebuild or snapshot names: one project's (which must exist), or those
    whose view runs, of the tenants in the caller's scope."""
    if name not in VIEWS:
        raise NotFound("projection", name)
    body = data or RebuildBody()
    ctx, services = call.ctx, call.services
    wanted_tenant = body.tenant_id or (ctx.tenant_id if body.project_id is not None else None)
    tenants = tenants_in_scope(services, ctx, wanted_tenant)
    env = normalize_env(body.env) if body.env is not None else None
    if body.project_id is not None:  # a partition that exists (else 404), whether a view of it runs or not
        return [Partition(tenant_id=tenants[0], env=env or services.settings.default_env,
                          project_id=body.project_id)]  # fmt: skip
    return [  # the partitions whose view runs: an env filter only narrows them down
        r.partition for r in services.views.runners
        if r.projection.name == name and r.partition.tenant_id in tenants and env in (None, r.partition.env)
    ]  # fmt: skip


def _taken(runner: Runner) -> SnapshotTaken:
    taking, p = runner.snapshot, runner.partition
    assert taking is not None
    meta = taking.meta
    return SnapshotTaken(
        name=runner.projection.name, tenant_id=p.tenant_id, env=p.env, project_id=p.project_id,
        state=taking.state, error=taking.error, position=None if meta is None else meta.position,
        documents=None if meta is None else meta.documents, taken_at=None if meta is None else meta.taken_at,
    )  # fmt: skip


def _ordered(runners: list[Runner]) -> list[Runner]:
    return sorted(runners, key=lambda r: (r.projection.name, r.partition.key))


async def _status(runner: Runner) -> ViewStatus:
    await runner.open()  # a runner started a moment ago may not know its generation yet
    head = await runner.spine.head(runner.partition)
    rebuild = runner.rebuild
    rebuild_status = None
    if rebuild is not None:
        rate = rebuild.events_per_second
        remaining = max(head - rebuild.position, 0)
        rebuild_status = RebuildStatus(
            generation=rebuild.generation,
            state=rebuild.state,
            position=rebuild.position,
            head=max(rebuild.head, rebuild.position),
            events_per_second=round(rate, 1),
            eta_seconds=round(remaining / rate, 1) if rate > 0 and rebuild.state == "building" else None,
            error=rebuild.error,
            from_=rebuild.source,
            snapshot_position=rebuild.snapshot_position,
        )
    stored = await stored_snapshot(runner.views, runner.partition.key, runner.projection)
    p = runner.partition
    return ViewStatus(
        name=runner.projection.name,
        tenant_id=p.tenant_id,
        env=p.env,
        project_id=p.project_id,
        generation=runner.generation,
        position=runner.position,
        head=head,
        lag=max(head - runner.position, 0),
        leading=runner.leading,
        rebuild=rebuild_status,
        snapshot=None
        if stored is None
        else SnapshotStatus(position=stored.position, taken_at=stored.taken_at, documents=stored.documents),
    )
