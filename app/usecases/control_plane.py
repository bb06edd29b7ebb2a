"""Executing control-plane commands: decide against the view, append, catch the view up."""

from __future__ import annotations

from collections.abc import Callable

from app.usecases.unit_of_work import retrying
from domain.append import AppendRequest
from domain.context import RequestContext
from domain.control_plane import ControlPlane, Decision
from domain.events import EventMeta
from domain.partition import SYSTEM_PROJECT, SYSTEM_TENANT
from domain.ports import EventSpine
from projections.control_plane import ControlPlaneProjector

Decide = Callable[[ControlPlane], list[Decision]]


class ControlPlaneService:
    def __init__(self, spine: EventSpine, projector: ControlPlaneProjector) -> None:
        self._spine = spine
        self.projector = projector

    @property
    def state(self) -> ControlPlane:
        return self.projector.state

    async def execute(self, decide: Decide, meta: EventMeta) -> int:
        """Append what `decide` decides; answer the last position (0 when nothing was needed).

        A version conflict means another writer created the record since our view was read:
        catch up and decide again (once: the unit of work's `retrying`), so the rule (usually
        `AlreadyExists`) answers with fresh state.
        """

        async def attempt() -> int:
            await self.projector.catch_up()
            position = 0
            for decision in decide(self.state):
                request = AppendRequest(
                    stream=decision.stream,
                    events=[decision.event],
                    expected_version=decision.expected_version,
                    meta=meta,
                )
                position = (await self._spine.append(self.projector.partition, request)).last_position
            return position

        position = await retrying(attempt, attempts=2)
        await self.projector.catch_up()
        return position


def system_meta(env: str, ctx: RequestContext | None = None, request_id: str | None = None) -> EventMeta:
    """Meta of a control-plane event: in the system partition, caused by `ctx`'s user."""
    return EventMeta(
        tenant_id=SYSTEM_TENANT,
        env=env,
        project_id=SYSTEM_PROJECT,
        user_id=ctx.user_id if ctx else None,
        request_id=ctx.request_id if ctx else request_id,
        causation_id=f"{ctx.tenant_id}:{ctx.user_id}" if ctx else None,
    )


def acting_user(ctx: RequestContext) -> str:
    assert ctx.user_id is not None  # the identity guard always sets it
    return ctx.user_id
