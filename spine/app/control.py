"""Executing control-plane commands: plan against the view, append, catch the view up."""

from __future__ import annotations

from collections.abc import Callable

from spine.domain.append import AppendRequest
from spine.domain.control_plane import ControlPlane, Planned
from spine.domain.errors import VersionConflict
from spine.domain.events import EventMeta
from spine.domain.ports import EventSpine
from spine.projections.control_plane import ControlPlaneProjector

Plan = Callable[[ControlPlane], list[Planned]]


class ControlPlaneService:
    def __init__(self, spine: EventSpine, projector: ControlPlaneProjector) -> None:
        self._spine = spine
        self.projector = projector

    @property
    def state(self) -> ControlPlane:
        return self.projector.state

    async def execute(self, plan: Plan, meta: EventMeta) -> int:
        """Append what `plan` decides; answer the last position (0 when nothing was needed).

        A version conflict means another writer created the record since our view was read:
        catch up and plan again, so the rule (usually `AlreadyExists`) answers with fresh state.
        """
        for attempt in range(2):
            await self.projector.catch_up()
            position = 0
            try:
                for planned in plan(self.state):
                    request = AppendRequest(
                        stream=planned.stream,
                        events=[planned.event],
                        expected_version=planned.expected_version,
                        meta=meta,
                    )
                    position = (await self._spine.append(self.projector.partition, request)).last_position
            except VersionConflict:
                if attempt:
                    raise
                continue
            await self.projector.catch_up()
            return position
        raise AssertionError("unreachable")
