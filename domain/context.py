"""RequestContext: who is asking, for which partition. Built by one dependency in `app`."""

from __future__ import annotations

import msgspec

from domain.events import EventMeta
from domain.partition import Identifier, Partition


class RequestContext(msgspec.Struct, frozen=True, kw_only=True):
    """The identity every data request carries; the partition is derived from it, never sent."""

    tenant_id: Identifier
    env: Identifier
    project_id: Identifier
    mode: str | None = None
    user_id: str | None = None
    surface_id: str | None = None
    app_id: str | None = None
    request_id: str | None = None
    roles: frozenset[str] = frozenset()

    @property
    def partition(self) -> Partition:
        return Partition(tenant_id=self.tenant_id, env=self.env, project_id=self.project_id)

    def event_meta(self, *, causation_id: str | None = None, correlation_id: str | None = None) -> EventMeta:
        """The meta stamped on every event this request appends."""
        return EventMeta(
            tenant_id=self.tenant_id,
            env=self.env,
            project_id=self.project_id,
            mode=self.mode,
            user_id=self.user_id,
            surface_id=self.surface_id,
            app_id=self.app_id,
            request_id=self.request_id,
            causation_id=causation_id,
            correlation_id=correlation_id or self.request_id,
        )
