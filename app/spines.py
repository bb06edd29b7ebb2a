"""Which event spine a request writes to: resolved through the routing registry, per request.

Each distinct backend a route names is opened once (by `Backends`) and kept for the life of the
process, so a route switch takes effect on the next request without a restart: the registry
changes, the next resolution names the new backend, and it is opened then.

Requests read and write through `PersonalSpine` (one per backend), which seals and opens the
personal fields of events (`domain.personal`); projections read the log as stored
(`stored_for_*`), so views keep those fields sealed.

Resolutions are kept per (partition, mode) until the control plane advances: the registry is
part of it, so any change of a route moves its position first, and a request pays one dict
lookup instead of the registry's three, the mode rules and the backend's key.
"""

from __future__ import annotations

import logging

from app.backends import EVENT_SPINE as KIND
from app.backends import Backends
from app.key_ring import KeyRing
from app.lab_warnings import LabWarnings
from app.personal_spine import PersonalSpine
from domain.backend_url import Backend
from domain.context import RequestContext
from domain.partition import Partition
from domain.ports import EventSpine
from domain.routing import Route, resolve
from projections.control_plane import ControlPlaneProjector

log = logging.getLogger(f"spine.{__name__}")

_MAX_RESOLVED = 10_000  # partitions whose resolution is kept; past that the cache starts over


class SpineRouter:
    def __init__(
        self,
        *,
        lab_store: EventSpine,
        projector: ControlPlaneProjector,
        backends: Backends,
        keys: KeyRing,
    ) -> None:
        self._lab_store = lab_store
        self.keys = keys
        self._personal: dict[int, PersonalSpine] = {}  # by the stored spine's id: those live for good
        self._projector = projector
        self._backends = backends
        self._warned: set[tuple[str, str, str]] = set()
        self._resolved: dict[tuple[Partition, str], tuple[EventSpine, str | None]] = {}
        self._resolved_at = -1  # the control plane's position the kept resolutions were made at

    async def for_context(self, ctx: RequestContext, warnings: LabWarnings | None = None) -> EventSpine:
        """The spine of the request's partition, personal fields sealed on the way in and opened on
        the way out; a lab fallback is noted in `warnings` when given."""
        return self.personal(await self.stored_for_context(ctx, warnings))

    async def for_partition(self, partition: Partition, mode: str) -> EventSpine:
        """The spine a partition is routed to under its tenant's `mode`, personal fields opened."""
        return self.personal(await self.stored_for_partition(partition, mode))

    async def stored_for_context(
        self, ctx: RequestContext, warnings: LabWarnings | None = None
    ) -> EventSpine:
        """`for_context`'s spine as stored: personal fields sealed (what projections read)."""
        assert ctx.mode is not None  # the identity guard sets it from the tenant record
        spine, warning = await self._resolve(ctx.partition, ctx.mode)
        if warnings is not None:
            warnings.spine(warning)
        return spine

    async def stored_for_partition(self, partition: Partition, mode: str) -> EventSpine:
        """`for_partition`'s spine as stored: personal fields sealed (what projections read)."""
        spine, _ = await self._resolve(partition, mode)
        return spine

    def personal(self, stored: EventSpine) -> PersonalSpine:
        """The one `PersonalSpine` over `stored` (SSE fan-out shares readers per spine object)."""
        spine = self._personal.get(id(stored))
        if spine is None:
            spine = self._personal[id(stored)] = PersonalSpine(stored, self.keys)
        return spine

    async def _resolve(self, partition: Partition, mode: str) -> tuple[EventSpine, str | None]:
        """The routed spine, or in lab the embedded one with the warning code of its fallback."""
        position = self._projector.state.position
        if position != self._resolved_at:  # routes may have changed: resolve everything afresh
            self._resolved.clear()
            self._resolved_at = position
        key = (partition, mode)
        resolved = self._resolved.get(key)
        if resolved is None:
            resolved = await self._resolve_now(partition, mode)  # a refusal raises: never kept
            if len(self._resolved) >= _MAX_RESOLVED:
                self._resolved.clear()
            if self._projector.state.position == position:  # not if it moved while a backend opened
                self._resolved[key] = resolved
        return resolved

    async def _resolve_now(self, partition: Partition, mode: str) -> tuple[EventSpine, str | None]:
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
        return await self._backends.spine(Backend(backend_type=route.backend_type, config=route.config))
