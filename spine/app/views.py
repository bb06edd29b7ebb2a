"""Which view store serves a resource kind, and the runners that keep each view current.

View stores are resolved through the routing registry like spines are; in lab, a kind without a
route uses the embedded view store beside the embedded spine. One runner per (projection, store,
partition) runs until shutdown: started at startup for every view a store already holds, and by
the first request that needs any other.
"""

from __future__ import annotations

import logging

import anyio.abc

from spine.app.audit import AUDIT_PROJECT
from spine.app.backends import Backends
from spine.app.metrics import Metrics
from spine.app.spines import SpineRouter
from spine.domain.backend_url import Backend
from spine.domain.context import RequestContext
from spine.domain.errors import SpineError
from spine.domain.events import Event
from spine.domain.partition import Partition
from spine.domain.ports import EventSpine, Notifier, ViewStore
from spine.domain.routing import Route, resolve
from spine.projections.catalog import VIEWS
from spine.projections.control_plane import ControlPlaneProjector
from spine.projections.runtime import Projection, Rebuild, Runner

log = logging.getLogger(__name__)


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
        projection: Projection,
        kind: str,
        ctx: RequestContext,
        *,
        source: tuple[Partition, EventSpine] | None = None,
    ) -> tuple[Runner, str | None]:
        """The running projection of the request's partition, and the lab warning if any.

        `source` projects another partition (with its spine) into the store routed for the
        request: the audit view reads the tenant's security trail that way.
        """
        assert ctx.mode is not None
        store, warning = await self._store_for(kind, ctx.partition, ctx.mode)
        partition = ctx.partition if source is None else source[0]
        runner = self._runners.get((projection.name, id(store), partition.key))
        spine = (await self._spines.for_context(ctx))[0] if source is None else source[1]
        if runner is None:
            runner = self._start(projection, partition, spine, store)
        elif spine is not runner.spine and (runner.rebuild is None or runner.rebuild.spine is not spine):
            # The partition's log was routed elsewhere: its positions are another log's, so the
            # view is rebuilt from that log while the current generation keeps serving reads.
            log.warning("event spine switched: rebuilding view", extra={"projection": projection.name})
            runner.rebuild = Rebuild(runner, spine=spine)
            self._task_group.start_soon(runner.rebuild.run)
        return runner, warning

    async def start_known(self) -> int:
        """Start a runner for every view the lab store and the routed stores already hold."""
        stores = [self._lab_views]
        for route in self._projector.registry.routes.values():
            if any(kind == route.resource_kind for _, kind in VIEWS.values()):
                try:
                    stores.append(await self._store(route))
                except SpineError as exc:  # one unreachable store must not keep the others down
                    log.warning("view store unavailable at startup", extra={"error_code": exc.error_code})
        started = 0
        for store in dict.fromkeys(stores):
            for partition_key, name in await store.known():
                if name not in VIEWS or (name, id(store), partition_key) in self._runners:
                    continue
                partition = Partition.from_key(partition_key)
                try:
                    spine = await self._spine_of(partition)
                except SpineError as exc:
                    log.warning("view not started", extra={"projection": name, "error_code": exc.error_code})
                    continue
                self._start(VIEWS[name][0], partition, spine, store)
                started += 1
        return started

    async def rebuild(self, name: str, partitions: list[Partition]) -> list[Runner]:
        """Start rebuilding view `name` of each partition (one already under way goes on)."""
        projection, kind = VIEWS[name]
        runners = []
        for partition in dict.fromkeys(partitions):
            runner = next(
                (r for r in self.runners if r.projection.name == name and r.partition == partition), None
            )
            spine = await self._spine_of(partition)  # the log the partition is routed to now
            if runner is None:
                tenant = self._projector.state.tenant(partition.tenant_id)  # 404 for an unknown tenant
                store, _ = await self._store_for(kind, partition, tenant.mode)
                runner = self._start(projection, partition, spine, store)
            if runner.rebuild is None or runner.rebuild.done.is_set():
                runner.rebuild = Rebuild(runner, spine=spine)
                self._task_group.start_soon(runner.rebuild.run)
            runners.append(runner)
        return runners

    def _start(
        self, projection: Projection, partition: Partition, spine: EventSpine, store: ViewStore
    ) -> Runner:
        runner = Runner(
            projection, partition, spine, store, self._notifier, poll_seconds=self._poll_seconds,
            on_batch=self._observe, holder=self._instance_id,
        )  # fmt: skip
        self._runners[(projection.name, id(store), partition.key)] = runner
        self._task_group.start_soon(runner.run)
        return runner

    def _observe(self, runner: Runner, events: list[Event]) -> None:
        if events:
            self._metrics.projection_batch(runner.projection.name, events[-1].recorded_at)

    async def _spine_of(self, partition: Partition) -> EventSpine:
        if partition.project_id == AUDIT_PROJECT:
            return self._system_spine
        tenant = self._projector.state.tenant(partition.tenant_id)
        return (await self._spines.for_partition(partition, tenant.mode))[0]

    async def _store_for(self, kind: str, partition: Partition, mode: str) -> tuple[ViewStore, str | None]:
        resolution = resolve(
            self._projector.registry, kind, partition.tenant_id, partition.env, partition.project_id, mode
        )
        store = self._lab_views if resolution.route is None else await self._store(resolution.route)
        return store, resolution.warning

    async def _store(self, route: Route) -> ViewStore:
        return await self._backends.views(
            Backend(backend_type=route.backend_type, config=route.config), route.resource_kind
        )
