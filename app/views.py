"""Which view store serves a resource kind, and the runners that keep each view current.

View stores are resolved through the routing registry like spines are; in lab, a kind without a
route uses the embedded view store beside the embedded spine. A view kept beside the log (the
object index: kind `event_spine`) lives where the lab keeps its views beside a system spine
(`app.backends.lab_views_of`): `views.db` next to a SQLite log, the same table, project or database otherwise.
One runner per (projection, store, partition) runs until shutdown: started at startup for every
view a store already holds, and by the first request that needs any other.

Operators start runners only for partitions that exist (`require_exists`); a stored view whose key
does not parse, or whose partition does not exist, is skipped at startup with one log line: what
is stored never keeps the service from starting.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import anyio.abc

from app.backends import EVENT_SPINE, Backends
from app.http.metrics import Metrics
from app.lab_warnings import LabWarnings
from app.spines import SpineRouter
from app.usecases.audit import AUDIT_PROJECT
from domain.backend_url import Backend
from domain.context import RequestContext
from domain.control_plane import ControlPlane
from domain.errors import InvalidIdentifier, NotFound, SpineError
from domain.events import Event
from domain.partition import SYSTEM_PROJECT, SYSTEM_TENANT, Partition
from domain.ports import EventSpine, Notifier, Projection, ViewStore
from domain.routing import Route, resolve, routed_envs
from projections.catalog import VIEWS, View
from projections.control_plane import ControlPlaneProjector
from projections.runtime import Rebuild, RebuildFrom, Runner
from projections.snapshots import TakeSnapshot

log = logging.getLogger(f"spine.{__name__}")


def project_known(state: ControlPlane, partition: Partition) -> bool:
    """The partition's project is one of its tenant's, the tenant's audit trail, or the control
    plane's own partition."""
    return (
        (partition.tenant_id, partition.project_id) in state.projects
        or partition.project_id == AUDIT_PROJECT
        or (partition.tenant_id, partition.project_id) == (SYSTEM_TENANT, SYSTEM_PROJECT)
    )


class ViewRouter:
    def __init__(
        self,
        *,
        lab_views: ViewStore,
        projector: ControlPlaneProjector,
        spines: SpineRouter,
        system_spine: EventSpine,
        backends: Backends,
        notifier: Notifier,
        metrics: Metrics,
        task_group: anyio.abc.TaskGroup,
        poll_seconds: float,
        instance_id: str,
    ) -> None:
        self._lab_views = lab_views
        self._projector = projector
        self._spines = spines
        self._system_spine = system_spine
        self._notifier = notifier
        self._metrics = metrics
        self._backends = backends
        self._task_group = task_group
        self._poll_seconds = poll_seconds
        self._instance_id = instance_id
        self._runners: dict[tuple[str, int, str], Runner] = {}

    @property
    def runners(self) -> list[Runner]:
        return list(self._runners.values())

    async def runner(
        self,
        view: View,
        ctx: RequestContext,
        *,
        warnings: LabWarnings | None = None,
        source: tuple[Partition, EventSpine] | None = None,
    ) -> Runner:
        """The running `view` of the request's partition; a lab fallback of its store is noted in
        `warnings` when given.

        `source` projects another partition (with its spine) into the store routed for the
        request: the audit view reads the tenant's security trail that way.
        """
        assert ctx.mode is not None
        projection = view.projection
        store, warning = await self._store_for(view.kind, ctx.partition, ctx.mode)
        if warnings is not None:
            warnings.view(warning)
        partition = ctx.partition if source is None else source[0]
        runner = self._runners.get((projection.name, id(store), partition.key))
        spine = await self._spines.stored_for_context(ctx) if source is None else source[1]
        if runner is None:
            if not await self._env_known(partition, spine):
                # Nothing was ever written in this env and no route names it: the view is empty, and
                # is answered without starting (or recording) a runner, so reads in made-up envs
                # cannot pile up runners. The first write makes the env known.
                return self._runner(projection, partition, spine, store)
            runner = self._start(projection, partition, spine, store)
        elif spine is not runner.spine and (runner.rebuild is None or runner.rebuild.spine is not spine):
            # The partition's log was routed elsewhere: its positions are another log's, so the
            # view is rebuilt from that log while the current generation keeps serving reads.
            log.warning("event spine switched: rebuilding view", extra={"projection": projection.name})
            runner.rebuild = Rebuild(runner, spine=spine)
            self._task_group.start_soon(runner.rebuild.run)
        return runner

    async def start_known(self) -> int:
        """Start a runner for every view the lab store and the routed stores already hold."""
        stores = [self._lab_views]
        for route in self._projector.registry.routes.values():
            if any(view.kind == route.resource_kind for view in VIEWS.values()):
                try:
                    stores.append(await self._store(route))
                except SpineError as exc:  # one unreachable store must not keep the others down
                    log.warning("view store unavailable at startup", extra={"error_code": exc.error_code})
        started = 0
        for store in dict.fromkeys(stores):
            try:
                known = await store.known()
            except SpineError as exc:  # a store that does not answer now: its views start on first use
                log.warning("view store unavailable at startup", extra={"error_code": exc.error_code})
                continue
            for partition_key, name in known:
                if (name, id(store), partition_key) in self._runners:
                    continue
                if name not in VIEWS:  # a newer version's view, or a record of another shape
                    log.warning("stored view skipped: no such view here",
                                extra={"projection": name[:100], "partition": partition_key[:300]})  # fmt: skip
                    continue
                try:
                    partition = Partition.from_key(partition_key)
                except InvalidIdentifier:  # written by an older version, or by hand: never fatal
                    log.warning("stored view skipped: its partition key does not parse",
                                extra={"projection": name, "partition": partition_key[:300]})  # fmt: skip
                    continue
                try:
                    await self.require_exists(partition, catch_up=False)
                    spine = await self._spine_of(partition)
                except SpineError as exc:
                    log.warning("view not started", extra={"projection": name, "partition": partition_key,
                                                           "error_code": exc.error_code})  # fmt: skip
                    continue
                self._start(VIEWS[name].projection, partition, spine, store)
                started += 1
        return started

    async def require_exists(self, partition: Partition, *, catch_up: bool = True) -> None:
        """Raise `NotFound` (404) unless the partition exists, before any runner is started for it.

        It exists when its tenant does, its project is one of the tenant's (or the tenant's audit
        trail, or the control plane's own partition), and its env is known: the deployment's
        default env, an env a route names for the tenant or the platform, or one the partition
        has events in. Envs have no registry of their own; these are the envs an operator
        declared or a client wrote to, so any other one is a typo, or a runner nobody needs.
        """
        state = self._projector.state
        if catch_up and (partition.tenant_id not in state.tenants or not project_known(state, partition)):
            await self._projector.catch_up()  # created a moment ago, maybe by another process
        state.tenant(partition.tenant_id)
        if not project_known(state, partition):
            raise NotFound("project", partition.project_id)
        if not await self._env_known(partition, await self._spine_of(partition)):
            raise NotFound("env", partition.env)

    async def _env_known(self, partition: Partition, spine: EventSpine) -> bool:
        """The deployment's default env (the control plane's), an env a route names for the tenant
        or the platform, or one the partition has events in."""
        declared = routed_envs(self._projector.registry, partition.tenant_id) | {
            self._projector.partition.env
        }
        return partition.env in declared or await spine.head(partition) > 0

    async def rebuild(
        self, name: str, partitions: list[Partition], *, from_: RebuildFrom = "snapshot"
    ) -> list[Runner]:
        """Start rebuilding view `name` of each partition (one already under way goes on)."""
        runners = []
        for runner, spine in await self._runners_of(name, partitions):
            if runner.rebuild is None or runner.rebuild.done.is_set():
                runner.rebuild = Rebuild(runner, spine=spine, from_=from_)
                self._task_group.start_soon(runner.rebuild.run)
            runners.append(runner)
        return runners

    async def snapshot(self, name: str, partitions: list[Partition], now: datetime) -> list[Runner]:
        """Start taking a snapshot of view `name` of each partition (one under way goes on)."""
        runners = []
        for runner, _ in await self._runners_of(name, partitions):
            if runner.snapshot is None or runner.snapshot.done.is_set():
                runner.snapshot = TakeSnapshot(runner, now=now)
                self._task_group.start_soon(runner.snapshot.run)
            runners.append(runner)
        return runners

    async def _runners_of(self, name: str, partitions: list[Partition]) -> list[tuple[Runner, EventSpine]]:
        """The runner of view `name` for each partition (started if need be: 404 for a partition
        that does not exist, before any starts), with the log the partition is routed to now."""
        view = VIEWS[name]
        partitions = list(dict.fromkeys(partitions))
        for partition in partitions:  # all of them, before anything starts
            if not any(r.partition == partition for r in self.runners if r.projection.name == name):
                await self.require_exists(partition)
        runners = []
        for partition in partitions:
            runner = next(
                (r for r in self.runners if r.projection.name == name and r.partition == partition), None
            )
            spine = await self._spine_of(partition)
            if runner is None:
                tenant = self._projector.state.tenant(partition.tenant_id)  # 404 for an unknown tenant
                store, _ = await self._store_for(view.kind, partition, tenant.mode)
                runner = self._start(view.projection, partition, spine, store)
            runners.append((runner, spine))
        return runners

    def _start(
        self, projection: Projection, partition: Partition, spine: EventSpine, store: ViewStore
    ) -> Runner:
        runner = self._runner(projection, partition, spine, store)
        self._runners[(projection.name, id(store), partition.key)] = runner
        self._task_group.start_soon(runner.run)
        return runner

    def _runner(
        self, projection: Projection, partition: Partition, spine: EventSpine, store: ViewStore
    ) -> Runner:
        return Runner(
            projection, partition, spine, store, self._notifier, poll_seconds=self._poll_seconds,
            on_batch=self._observe, holder=self._instance_id,
        )  # fmt: skip

    def _observe(self, runner: Runner, events: list[Event]) -> None:
        if events:
            self._metrics.projection_batch(runner.projection.name, events[-1].recorded_at)

    async def _spine_of(self, partition: Partition) -> EventSpine:
        if partition.project_id == AUDIT_PROJECT:
            return self._system_spine
        tenant = self._projector.state.tenant(partition.tenant_id)
        return await self._spines.stored_for_partition(partition, tenant.mode)

    async def _store_for(self, kind: str, partition: Partition, mode: str) -> tuple[ViewStore, str | None]:
        resolution = resolve(
            self._projector.registry, kind, partition.tenant_id, partition.env, partition.project_id, mode
        )
        store = self._lab_views if resolution.route is None else await self._store(resolution.route)
        return store, resolution.warning

    async def _store(self, route: Route) -> ViewStore:
        backend = Backend(backend_type=route.backend_type, config=route.config)
        if route.resource_kind == EVENT_SPINE:  # views beside a log: where the lab keeps its own
            backend = _beside(backend)
        return await self._backends.views(backend, route.resource_kind)


def _beside(log: Backend) -> Backend:
    """The view store beside a log, as `app.backends.lab_views_of` places the lab's: `views.db` in
    a SQLite log's directory (whatever its path names, `.` included), else the log's own backend."""
    if log.backend_type != "sqlite":
        return log
    return Backend(
        backend_type="sqlite", config={"path": str(Path(str(log.config["path"])).parent / "views.db")}
    )
