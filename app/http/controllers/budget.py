"""`/v1/budget`: usage and limits per unit, decided on the unit's stream; totals and ledger views."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.params import JSONBody, Parameter

from app.http.reads import MinPosition, caught_up
from app.http.services import Call, CallDep
from app.usecases.budget import (
    LedgerPage,
    Overview,
    Recorded,
    ledger_page,
    overview,
    record_usage,
    set_limit,
)
from domain.blackboard import NAME_PATTERN
from domain.budget import (
    UNIT_PATTERN,
    LimitChange,
    LimitSet,
    LimitWarning,
    Period,
    Rule,
    Tally,
    Usage,
    UsageRecorded,
)
from domain.cursor import parse_cursor
from domain.ports import EventSpine
from projections.catalog import VIEWS

VIEW = VIEWS["budget"]
MAX_PAGE = 1000
UnitFilter = Annotated[str | None, Parameter(description="only this unit", pattern=UNIT_PATTERN)]
RunFilter = Annotated[str | None, Parameter(description="only usage of this run", pattern=NAME_PATTERN)]
After = Annotated[str | None, Parameter(description="position cursor: entries after it")]
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="page size")]


class UsageAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The usage as recorded, the soft limits it passed, and the unit's totals after it."""

    position: int
    unit: str
    amount: float
    cost_usd: float
    model: str | None
    run_id: str | None
    id: str | None
    warnings: list[LimitWarning]
    totals: dict[Period, Tally]
    limits: dict[Period, Rule]
    replayed: bool


class LimitAnswer(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    unit: str
    period: Period
    limit: float
    hard: bool
    limits: dict[Period, Rule]
    totals: dict[Period, Tally]


class BudgetController(Controller):
    path = "/v1/budget"
    tags = ["budget"]

    @post("/usage", status_code=201, summary="Record usage of a unit; 402 when it would pass a hard limit")
    async def record(self, data: JSONBody[Usage], call: CallDep) -> Response[UsageAnswer]:
        spine = await _writer(call)
        recorded = await record_usage(spine, call.ctx, data, call.services.clock())
        return Response(_usage_answer(recorded), status_code=201, headers=_written(recorded))

    @put("/limits", summary="Set the day, month or total limit of a unit, hard (refuse) or soft (warn)")
    async def set_limit(self, data: JSONBody[LimitChange], call: CallDep) -> Response[LimitAnswer]:
        spine = await _writer(call)
        recorded = await set_limit(spine, call.ctx, data, call.services.clock())
        return Response(_limit_answer(recorded), headers=_written(recorded))

    @get("/", summary="Limits and totals of the current day, month (UTC) and all time, per unit")
    async def read_budget(
        self, call: CallDep, unit: UnitFilter = None, min_position: MinPosition = None
    ) -> Response[Overview]:
        runner = await caught_up(call, VIEW, min_position)
        answer = await overview(runner, call.services.clock(), unit)
        return Response(answer)

    @get("/ledger", summary="Usage entries in order, by cursor; filters by run and unit")
    async def read_ledger(
        self,
        call: CallDep,
        after: After = None,
        limit: Limit = 100,
        run_id: RunFilter = None,
        unit: UnitFilter = None,
        min_position: MinPosition = None,
    ) -> Response[LedgerPage]:
        cursor = parse_cursor(after)
        runner = await caught_up(call, VIEW, min_position)
        page = await ledger_page(runner, after=cursor, limit=limit, run_id=run_id, unit=unit)
        return Response(page)


async def _writer(call: Call) -> EventSpine:
    """The spine to decide on, once the view that will show the decision is known to be routed."""
    await call.view(VIEW)  # 503 before appending
    return await call.spine()


def _written(recorded: Recorded) -> dict[str, str]:
    return {"X-Spine-Position": str(recorded.position)}


def _usage_answer(recorded: Recorded) -> UsageAnswer:
    event = msgspec.convert(recorded.data, UsageRecorded)
    usage, state = event.usage, event.state
    return UsageAnswer(
        position=recorded.position,
        unit=usage.unit,
        amount=usage.amount,
        cost_usd=usage.cost_usd,
        model=usage.model,
        run_id=usage.run_id,
        id=usage.id,
        warnings=event.warnings,
        totals={"day": state.day, "month": state.month, "total": state.total},
        limits=state.limits,
        replayed=recorded.replayed,
    )


def _limit_answer(recorded: Recorded) -> LimitAnswer:
    event = msgspec.convert(recorded.data, LimitSet)
    change, state = event.change, event.state
    return LimitAnswer(
        position=recorded.position,
        unit=change.unit,
        period=change.period,
        limit=change.limit,
        hard=change.hard,
        limits=state.limits,
        totals={"day": state.day, "month": state.month, "total": state.total},
    )
