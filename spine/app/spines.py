"""Which event spine a request writes to: resolved through the routing registry, per request.

Each distinct backend a route names is opened once and kept for the life of the process, so a
route switch takes effect on the next request without a restart: the registry changes, the next
resolution names the new backend, and it is opened then.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import msgspec

from spine.adapters.cosmos_client import cosmos_options
from spine.adapters.cosmos_spine import DEFAULT_CONTAINER as COSMOS_EVENTS
from spine.adapters.cosmos_spine import CosmosSpine
from spine.adapters.dynamodb_spine import DynamoDBSpine
from spine.adapters.dynamodb_table import dynamodb_options
from spine.adapters.firestore_spine import FirestoreSpine
from spine.adapters.memory_spine import MemorySpine
from spine.adapters.sqlite_file import Synchronous
from spine.adapters.sqlite_spine import SQLiteSpine
from spine.app.metered_spine import MeteredSpine
from spine.app.metrics import Metrics
from spine.domain.context import RequestContext
from spine.domain.errors import BackendUnavailable
from spine.domain.partition import Partition
from spine.domain.ports import EventSpine, Notifier, SecretResolver
from spine.domain.routing import Route, resolve
from spine.projections.control_plane import ControlPlaneProjector

log = logging.getLogger(__name__)

KIND = "event_spine"


class SpineRouter:
    def __init__(
        self,
        *,
        lab_store: EventSpine,
        lab_path: Path,
        projector: ControlPlaneProjector,
        notifier: Notifier,
        metrics: Metrics,
        data_dir: Path,
        synchronous: Synchronous,
        stack: AsyncExitStack,
        secrets: SecretResolver,
    ) -> None:
        self._lab_store = lab_store
        self._lab_path = lab_path.resolve()
        self._projector = projector
        self._notifier = notifier
        self._metrics = metrics
        self._data_dir = data_dir
        self._synchronous = synchronous
        self._stack = stack
        self._secrets = secrets
        self._opened: dict[bytes, EventSpine] = {}
        self._lock = anyio.Lock()
        self._warned: set[tuple[str, str, str]] = set()

    async def for_context(self, ctx: RequestContext) -> tuple[EventSpine, str | None]:
        """The spine of the request's partition, and the warning to send when lab fell back."""
        assert ctx.mode is not None  # the identity guard sets it from the tenant record
        return await self.for_partition(ctx.partition, ctx.mode)

    async def for_partition(self, partition: Partition, mode: str) -> tuple[EventSpine, str | None]:
        """The spine a partition is routed to under its tenant's `mode`, and the lab warning if any."""
        tenant_id, env, project_id = partition.tenant_id, partition.env, partition.project_id
        resolution = resolve(self._projector.registry, KIND, tenant_id, env, project_id, mode)
        if resolution.route is None:
            if (tenant_id, env, project_id) not in self._warned:  # once per partition and process
                self._warned.add((tenant_id, env, project_id))
                log.warning(
                    "no route: lab falls back to the embedded store",
                    extra={"warning": resolution.warning, "tenant_id": tenant_id, "env": env,
                           "project_id": project_id},
                )  # fmt: skip
            return self._lab_store, resolution.warning
        return await self.open(resolution.route), None

    async def open(self, route: Route) -> EventSpine:
        key = msgspec.json.encode((route.backend_type, route.config, route.secret_refs))
        spine = self._opened.get(key)
        if spine is not None:
            return spine
        async with self._lock:
            if key not in self._opened:
                self._opened[key] = await self._connect(route)
            return self._opened[key]

    async def _connect(self, route: Route) -> EventSpine:
        match route.backend_type:
            case "sqlite":
                path = (self._data_dir / str(route.config["path"])).resolve()
                if path == self._lab_path:
                    return self._lab_store
                sqlite = SQLiteSpine(
                    path,
                    notifier=self._notifier,
                    synchronous=self._synchronous,
                    on_commit=self._metrics.on_commit,
                )
                return MeteredSpine(await self._stack.enter_async_context(sqlite), self._metrics)
            case "memory":
                return MeteredSpine(MemorySpine(self._notifier), self._metrics)
            case "dynamodb":
                dynamodb = DynamoDBSpine(notifier=self._notifier, **dynamodb_options(route.config))
                return MeteredSpine(await self._stack.enter_async_context(dynamodb), self._metrics)
            case "cosmos":
                key = await self._secrets.resolve(str(route.config["key"]))
                cosmos = CosmosSpine(
                    notifier=self._notifier,
                    on_commit=self._metrics.on_commit,
                    **cosmos_options(route.config, key, container=COSMOS_EVENTS),
                )
                return MeteredSpine(await self._stack.enter_async_context(cosmos), self._metrics)
            case "firestore":
                firestore = FirestoreSpine.from_config(
                    route.config, notifier=self._notifier, on_commit=self._metrics.on_commit
                )
                return MeteredSpine(await self._stack.enter_async_context(firestore), self._metrics)
            case other:
                raise BackendUnavailable(KIND, f"the {other} event spine is not available in this build yet")
