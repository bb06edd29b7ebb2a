"""Which view store serves a resource kind, and the runners that keep each view current.

View stores are resolved through the routing registry like spines are; in lab, a kind without a
route uses the embedded view store beside the embedded spine. One runner per (projection, store,
partition) is started the first time a request needs it and runs until shutdown.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import anyio.abc
import msgspec

from spine.adapters.memory_views import MemoryViewStore
from spine.adapters.sqlite_file import Synchronous
from spine.adapters.sqlite_views import SQLiteViewStore
from spine.app.spines import SpineRouter
from spine.domain.context import RequestContext
from spine.domain.errors import BackendUnavailable
from spine.domain.partition import Partition
from spine.domain.ports import EventSpine, Notifier, ViewStore
from spine.domain.routing import Route, resolve
from spine.projections.control_plane import ControlPlaneProjector
from spine.projections.runtime import Projection, Runner


class ViewRouter:
    def __init__(
        self,
        *,
        lab_views: ViewStore,
        projector: ControlPlaneProjector,
        spines: SpineRouter,
        notifier: Notifier,
        data_dir: Path,
        synchronous: Synchronous,
        stack: AsyncExitStack,
        task_group: anyio.abc.TaskGroup,
        poll_seconds: float,
    ) -> None:
        self._lab_views = lab_views
        self._projector = projector
        self._spines = spines
        self._notifier = notifier
        self._data_dir = data_dir
        self._synchronous = synchronous
        self._stack = stack
        self._task_group = task_group
        self._poll_seconds = poll_seconds
        self._stores: dict[bytes, ViewStore] = {}
        self._runners: dict[tuple[str, int, str], Runner] = {}
        self._lock = anyio.Lock()

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
        resolution = resolve(self._projector.registry, kind, ctx.tenant_id, ctx.env, ctx.project_id, ctx.mode)
        store = self._lab_views if resolution.route is None else await self._store(resolution.route)
        partition = ctx.partition if source is None else source[0]
        key = (projection.name, id(store), partition.key)
        runner = self._runners.get(key)
        if runner is None:
            spine = (await self._spines.for_context(ctx))[0] if source is None else source[1]
            runner = Runner(
                projection, partition, spine, store, self._notifier, poll_seconds=self._poll_seconds
            )
            self._runners[key] = runner
            self._task_group.start_soon(runner.run)
        return runner, resolution.warning

    async def _store(self, route: Route) -> ViewStore:
        key = msgspec.json.encode((route.backend_type, route.config))
        async with self._lock:
            if key not in self._stores:
                self._stores[key] = await self._connect(route)
            return self._stores[key]

    async def _connect(self, route: Route) -> ViewStore:
        match route.backend_type:
            case "sqlite":
                path = (self._data_dir / str(route.config["path"])).resolve()
                store = SQLiteViewStore(path, synchronous=self._synchronous)
                return await self._stack.enter_async_context(store)
            case "memory":
                return MemoryViewStore()
            case other:
                raise BackendUnavailable(
                    route.resource_kind, f"the {other} view store is not available in this build yet"
                )
