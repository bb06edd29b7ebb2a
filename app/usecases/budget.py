"""Budget decisions made on the unit's stream, and the answers the budget routes read from the view.

A decision is one unit of work (`app/usecases/unit_of_work.py`): it reads the stream's last event
and appends expecting the version it read; when another writer got there first the append is
refused and the decision is made again on the new state. Limits are never checked against the
view, which may lag.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from app.usecases.unit_of_work import Decide, append_expecting, decide_and_append, stream_version
from domain.budget import (
    DECIMALS,
    LEDGER,
    LIMITS,
    PERIODS,
    TOTALS,
    USAGE_RECORDED,
    LimitChange,
    LimitWarning,
    Period,
    Tally,
    Usage,
    day_key,
    decide_limit,
    decide_usage,
    ledger_prefix,
    month_key,
    state_after,
    stream_of,
    totals_prefix,
    usage_event_id,
)
from domain.context import RequestContext
from domain.errors import BudgetExceeded, VersionConflict
from domain.events import NO_STREAM, AppendResult, Event, NewEvent
from domain.ports import EventSpine
from projections.runtime import Runner

MAX_UNITS = 1000
MAX_SCANS = 10


@dataclass(frozen=True, slots=True)
class Recorded:
    """A budget event as appended, or as stored before when the request was a retry."""

    position: int
    data: dict[str, Any]
    replayed: bool


async def record_usage(spine: EventSpine, ctx: RequestContext, usage: Usage, now: datetime) -> Recorded:
    """Record a usage, or raise `BudgetExceeded`; a retried usage `id` answers the original."""

    def decide(last: Event | None) -> NewEvent:
        return decide_usage(state_after(usage.unit, last), usage, now, partition=ctx.partition)

    try:
        return await _append_decided(spine, ctx, stream_of(usage.unit), decide)
    except BudgetExceeded:
        # A retry of a usage recorded before the budget ran out is answered, not refused.
        if usage.id is not None:
            stored = await _stored_usage(
                spine, ctx, usage.unit, usage_event_id(ctx.partition, usage.unit, usage.id)
            )
            if stored is not None:
                return stored
        raise


async def set_limit(spine: EventSpine, ctx: RequestContext, change: LimitChange, now: datetime) -> Recorded:
    def decide(last: Event | None) -> NewEvent:
        return decide_limit(state_after(change.unit, last), change, now)

    return await _append_decided(spine, ctx, stream_of(change.unit), decide)


async def _append_decided(spine: EventSpine, ctx: RequestContext, stream: str, decide: Decide) -> Recorded:
    decided = await decide_and_append(spine, ctx, stream, decide)
    if decided.replayed:  # the event id was stored before: a retry
        return await _original(spine, ctx, stream, decided.result)
    return Recorded(position=decided.result.last_position, data=decided.event.data, replayed=False)


async def _stored_usage(spine: EventSpine, ctx: RequestContext, unit: str, event_id: str) -> Recorded | None:
    """The usage stored under `event_id`, asked of the spine itself rather than of the lagging view.

    Appending a stored id answers the original event, whatever the expected version; an id not
    stored meets `no_stream` on a stream that has events (it holds a limit), and nothing is appended.
    """
    stream = stream_of(unit)
    # never the case after a refusal (a limit is an event); `no_stream` would append
    if await stream_version(spine, ctx.partition, stream) == 0:
        return None
    probe = NewEvent(type=USAGE_RECORDED, id=event_id)
    try:
        result = await append_expecting(spine, ctx, stream, [probe], NO_STREAM)
    except VersionConflict:
        return None
    return await _original(spine, ctx, stream, result)


async def _original(spine: EventSpine, ctx: RequestContext, stream: str, result: AppendResult) -> Recorded:
    after = result.stream_version - 1
    [event], _ = await spine.read_stream(ctx.partition, stream, after_version=after, limit=1)
    return Recorded(position=result.last_position, data=event.data, replayed=True)


class LimitView(msgspec.Struct, frozen=True, kw_only=True):
    limit: float
    hard: bool
    used: float
    remaining: float
    set_at: str | None = None
    set_by: str | None = None


class UnitBudget(msgspec.Struct, frozen=True, kw_only=True):
    unit: str
    limits: dict[Period, LimitView]
    totals: dict[Period, Tally]


class Overview(msgspec.Struct, frozen=True, kw_only=True):
    """Every unit's limits and totals of the current day and month (UTC) and of all time."""

    day: str
    month: str
    units: list[UnitBudget]


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    unit: str
    amount: float
    cost_usd: float
    model: str | None = None
    run_id: str | None = None
    id: str | None = None
    at: str | None = None
    user_id: str | None = None
    warnings: list[LimitWarning] = msgspec.field(default_factory=list)


class LedgerPage(msgspec.Struct, frozen=True, kw_only=True):
    """`next` is the cursor to read after; it passes entries a filter skipped."""

    entries: list[LedgerEntry]
    next: int


async def overview(runner: Runner, now: datetime, unit: str | None) -> Overview:
    """Totals of the day and month of `now`: a unit without a document for them used nothing yet."""
    keys: dict[Period, str] = {"day": day_key(now), "month": month_key(now), "total": "total"}
    totals: dict[str, dict[Period, Tally]] = {}
    for period in PERIODS:
        docs = await runner.list(
            TOTALS, prefix=totals_prefix(period, keys[period]) + (unit or ""), limit=MAX_UNITS
        )
        for doc in docs:
            if unit is None or doc.data["unit"] == unit:
                totals.setdefault(doc.data["unit"], {})[period] = msgspec.convert(doc.data, Tally)
    rules: dict[str, dict[Period, _LimitDoc]] = {}
    for doc in await runner.list(LIMITS, prefix=f"{unit}|" if unit else "", limit=len(PERIODS) * MAX_UNITS):
        rule = msgspec.convert(doc.data, _LimitDoc)
        rules.setdefault(rule.unit, {})[rule.period] = rule
    units = []
    for name in sorted(totals.keys() | rules.keys()):
        tallies = {p: totals.get(name, {}).get(p) or Tally(key=keys[p]) for p in PERIODS}
        limits = {p: _limit_view(rule, tallies[p].amount) for p, rule in rules.get(name, {}).items()}
        units.append(UnitBudget(unit=name, limits=limits, totals=tallies))
    return Overview(day=keys["day"], month=keys["month"], units=units)


class _LimitDoc(msgspec.Struct, frozen=True, kw_only=True):
    unit: str
    period: Period
    limit: float
    hard: bool
    set_at: str | None = None
    set_by: str | None = None


def _limit_view(rule: _LimitDoc, used: float) -> LimitView:
    remaining = max(0.0, round(rule.limit - used, DECIMALS))
    return LimitView(limit=rule.limit, hard=rule.hard, used=used, remaining=remaining, set_at=rule.set_at,
                     set_by=rule.set_by)  # fmt: skip


async def ledger_page(
    runner: Runner, *, after: int, limit: int, run_id: str | None, unit: str | None
) -> LedgerPage:
    """Usage entries after `after`, in position order, from the index of the run, the unit, or all."""
    prefix = ledger_prefix(run_id=run_id, unit=unit)
    entries: list[LedgerEntry] = []
    cursor = after
    for _ in range(MAX_SCANS):  # scans more than one page only when both filters are given
        docs = await runner.list(LEDGER, prefix=prefix, after=f"{prefix}{cursor:020d}", limit=limit)
        for doc in docs:
            cursor = doc.position
            if unit is None or doc.data["unit"] == unit:
                entries.append(msgspec.convert(doc.data, LedgerEntry))
                if len(entries) == limit:
                    return LedgerPage(entries=entries, next=cursor)
        if len(docs) < limit:
            break
    return LedgerPage(entries=entries, next=cursor)
