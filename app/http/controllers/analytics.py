"""`/v1/analytics`: product events attributed from the request context; queries and daily counts.

Every route needs `X-App-Id` (and, like every data route, `X-Surface-Id`): they are the attribution
stamped on each event. Reads answer the whole project's events — every app and surface of it —
and `?app_id=` / `?surface_id=` narrow them to one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, Parameter, QueryParameter

from app.http.reads import MinPosition, caught_up
from app.http.services import Call, CallDep
from app.usecases.analytics import (
    Appended,
    CountsPage,
    EventsPage,
    check_claims_of,
    check_ids,
    counts_page,
    events_page,
    record,
    violation_details,
)
from app.usecases.audit import record_audit
from domain.analytics import NAME_PATTERN, Batch, Tracked, query_counts, query_events
from domain.blackboard import NAME_PATTERN as RUN_PATTERN
from domain.errors import IdentityOverride
from domain.partition import IDENTIFIER_PATTERN
from projections.catalog import VIEWS

log = logging.getLogger(f"spine.{__name__}")

VIEW = VIEWS["analytics"]
MAX_PAGE = 1000
APP = {"requires_app": True}  # X-App-Id is required: it is part of every event's attribution
INGEST = {**APP, "rate_limit": "analytics"}  # a budget of its own: a page's beacons, not its API calls

NameFilter = Annotated[str | None, Parameter(description="only events of this name", pattern=NAME_PATTERN)]
RunFilter = Annotated[str | None, Parameter(description="only events of this run", pattern=RUN_PATTERN)]
AppFilter = Annotated[
    str | None, Parameter(description="only events of this app", pattern=IDENTIFIER_PATTERN)
]
SurfaceFilter = Annotated[
    str | None, Parameter(description="only events of this surface", pattern=IDENTIFIER_PATTERN)
]
After = Annotated[str | None, Parameter(description="the `next` of the previous page")]
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="page size")]
TimeFrom = Annotated[str | None, QueryParameter(name="from", description="ISO 8601 time, inclusive")]
TimeTo = Annotated[str | None, QueryParameter(name="to", description="ISO 8601 time, exclusive")]
DayFrom = Annotated[str | None, QueryParameter(name="from", description="a UTC day (2025-01-31), inclusive")]
DayTo = Annotated[str | None, QueryParameter(name="to", description="a UTC day, exclusive")]


class TrackedAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The event's id (derived from a client `id`, which makes a retry answer the original)."""

    id: str
    position: int


class BatchAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """Each event's id and position, in the order sent; `position` is the highest of them."""

    ids: list[str]
    positions: list[int]
    position: int


class AnalyticsController(Controller):
    path = "/v1/analytics"
    tags = ["analytics"]

    @post(
        "/events", status_code=201, opt=INGEST, summary="Record an event; attribution comes from the context"
    )
    async def track(self, data: JSONBody[Tracked], call: CallDep) -> Response[TrackedAnswer]:
        appended = await _record(call, [data])
        answer = TrackedAnswer(id=appended.ids[0], position=appended.positions[0])
        return Response(answer, status_code=201, headers=_written(answer.position))

    @post(
        "/events/batch",
        status_code=201,
        opt=INGEST,
        summary="Record up to 1000 events; one bad event refuses all",
    )
    async def track_batch(
        self, data: JSONBody[Batch], call: CallDep, request: Request[Any, Any, Any]
    ) -> Response[BatchAnswer]:
        try:
            check_claims_of(call.ctx, data.events)
        except IdentityOverride as exc:
            await _audit_violation(call, exc, request)
            raise
        check_ids(data.events)
        appended = await _record(call, data.events)
        top = max(appended.positions)
        answer = BatchAnswer(ids=appended.ids, positions=appended.positions, position=top)
        return Response(answer, status_code=201, headers=_written(top))

    @get("/events", opt=APP, summary="The project's events by time (oldest first); filters by run and name")
    async def list_events(
        self,
        call: CallDep,
        start: TimeFrom = None,
        end: TimeTo = None,
        run_id: RunFilter = None,
        name: NameFilter = None,
        app_id: AppFilter = None,
        surface_id: SurfaceFilter = None,
        after: After = None,
        limit: Limit = 100,
        min_position: MinPosition = None,
    ) -> Response[EventsPage]:
        query = query_events(run_id=run_id, name=name, after=after, start=start, end=end)
        runner = await caught_up(call, VIEW, min_position)
        page = await events_page(
            runner, query, limit=limit, app_id=app_id, surface_id=surface_id, keys=call.services.spines.keys
        )
        return Response(page)

    @get("/counts", opt=APP, summary="Events per name per UTC day")
    async def list_counts(
        self,
        call: CallDep,
        start: DayFrom = None,
        end: DayTo = None,
        name: NameFilter = None,
        after: After = None,
        limit: Limit = 100,
        min_position: MinPosition = None,
    ) -> Response[CountsPage]:
        query = query_counts(name=name, after=after, start=start, end=end)
        runner = await caught_up(call, VIEW, min_position)
        page = await counts_page(runner, query, limit=limit)
        return Response(page)


async def _record(call: Call, events: Sequence[Tracked]) -> Appended:
    ctx = call.ctx
    view = await call.view(VIEW)  # 503 before appending
    spine = await call.spine()
    services = call.services
    return await record(spine, view, ctx, events, services.clock(), services.settings.read_wait_seconds)


def _written(position: int) -> dict[str, str]:
    return {"X-Spine-Position": str(position)}


async def _audit_violation(call: Call, exc: IdentityOverride, request: Request[Any, Any, Any]) -> None:
    """A refused claim inside a batch is audited like the guard audits one at the top level."""
    ctx = call.ctx
    data = violation_details(ctx, exc, request.method, request.url.path)
    await record_audit(
        call.services.spine,
        tenant_id=ctx.tenant_id,
        env=ctx.env,
        stream="audit:auth",
        event_type="auth.violation",
        data=data,
        user_id=ctx.user_id,
        request_id=ctx.request_id,
    )
    log.warning(
        "identity override rejected", extra={k: v for k, v in data.items() if k not in {"sent", "actual"}}
    )
