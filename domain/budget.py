"""Budgets: usage and limits per unit of a partition, decided on the unit's one stream.

Every event of a unit lands in `budget:{unit}` and carries the unit's whole state after it: its
limits and the totals of its day, its month and all time. Deciding the next usage therefore needs
the stream's last event only, and an append that expects that stream's version is refused when
another usage landed first, so two concurrent usages can never both take the last unit. The view
upserts documents straight from each event's snapshot: it never reads a document to add to it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

import msgspec

from domain.errors import BudgetExceeded
from domain.events import Event, EventId, NewEvent
from domain.identifiers import NAME_PATTERN as RUN_PATTERN
from domain.identifiers import UNIT_PATTERN as UNIT_PATTERN  # units: one home
from domain.partition import Partition
from domain.views import Upsert, ViewOp

MAX_AMOUNT = 1e15
DECIMALS = 9  # sums are rounded to 1e-9 so that 0.1 + 0.2 does not pass a limit of 0.3

USAGE_RECORDED = "budget.usage_recorded"
LIMIT_SET = "budget.limit_set"
TOTALS_KEPT = "budget.totals_kept"  # written by retention before it removes a unit's events
LEDGER, TOTALS, LIMITS = "budget.ledger", "budget.totals", "budget.limits"

Unit = Annotated[str, msgspec.Meta(pattern=UNIT_PATTERN, description="what is counted: tokens, usd, calls…")]
RunId = Annotated[str, msgspec.Meta(pattern=RUN_PATTERN)]
Amount = Annotated[float, msgspec.Meta(gt=0, le=MAX_AMOUNT)]
NonNegative = Annotated[float, msgspec.Meta(ge=0, le=MAX_AMOUNT)]
Period = Literal["day", "month", "total"]
PERIODS: Final[tuple[Period, ...]] = ("day", "month", "total")

_IDS: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:spine:budget:usage")


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """A usage to record; `id` makes it idempotent (a retry records nothing twice)."""

    amount: Amount
    unit: Unit
    cost_usd: NonNegative = 0.0
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    run_id: RunId | None = None
    id: EventId | None = None


class LimitChange(msgspec.Struct, frozen=True, kw_only=True):
    """Set the limit of one period of a unit; a hard limit refuses, a soft one warns."""

    period: Period
    unit: Unit
    limit: NonNegative
    hard: bool


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    limit: float
    hard: bool


class Tally(msgspec.Struct, frozen=True, kw_only=True):
    """The totals of one period: `key` is its day (2026-11-28), month (2026-11) or `total`."""

    key: str
    amount: float = 0.0
    cost_usd: float = 0.0
    count: int = 0

    def plus(self, usage: Usage) -> Tally:
        return Tally(
            key=self.key,
            amount=_add(self.amount, usage.amount),
            cost_usd=_add(self.cost_usd, usage.cost_usd),
            count=self.count + 1,
        )


class BudgetState(msgspec.Struct, frozen=True, kw_only=True):
    """A unit's state after an event: the snapshot every budget event carries."""

    unit: str
    at: datetime | None = None
    limits: dict[Period, Rule] = msgspec.field(default_factory=dict)
    day: Tally = Tally(key="")
    month: Tally = Tally(key="")
    total: Tally = Tally(key="total")

    def tally(self, period: Period) -> Tally:
        return {"day": self.day, "month": self.month, "total": self.total}[period]

    def as_of(self, now: datetime) -> BudgetState:
        """The state at `now`: a later day or month starts from zero.

        Time never runs backwards on a stream: a clock behind the last decision decides as of it.
        """
        moment = now.astimezone(UTC) if self.at is None else max(now.astimezone(UTC), self.at)
        day, month = day_key(moment), month_key(moment)
        return msgspec.structs.replace(
            self,
            at=moment,
            day=self.day if self.day.key == day else Tally(key=day),
            month=self.month if self.month.key == month else Tally(key=month),
        )


class LimitWarning(msgspec.Struct, frozen=True, kw_only=True):
    """A soft limit the usage took the period past: `used` includes the usage."""

    period: Period
    limit: float
    used: float


class UsageRecorded(msgspec.Struct, frozen=True, kw_only=True):
    usage: Usage
    warnings: list[LimitWarning]
    state: BudgetState


class LimitSet(msgspec.Struct, frozen=True, kw_only=True):
    change: LimitChange
    state: BudgetState


class KeptTally(msgspec.Struct, frozen=True, kw_only=True):
    """A period's totals as the latest event counting in it left them."""

    period: Period
    tally: Tally
    at: datetime | None


class KeptLimit(msgspec.Struct, frozen=True, kw_only=True):
    change: LimitChange
    set_at: datetime | None
    set_by: str | None


class TotalsKept(msgspec.Struct, frozen=True, kw_only=True):
    """What retention is about to remove from a unit's stream and its view must keep: the totals
    of every period whose latest writer goes, and every limit whose last setting goes. Like every
    budget event it carries the unit's state, and its view writes that state's totals too: so the
    event it follows can go by the next run without another summary, and runs come to rest."""

    state: BudgetState
    totals: list[KeptTally]
    limits: list[KeptLimit]


class TotalsKeeper:
    """Reads a unit's stream in order, told which positions retention removes, and answers the
    `budget.totals_kept` event that keeps what the view would lose with them (None: nothing).

    The view's totals and limits documents each show what the latest event writing them wrote;
    a document loses its value only when that latest writer is removed."""

    def __init__(self, unit: str, removed: set[int]) -> None:
        self._unit, self._removed = unit, removed
        self._totals: dict[tuple[Period, str], tuple[KeptTally, bool]] = {}  # latest writer: what, gone
        self._limits: dict[Period, tuple[KeptLimit, bool]] = {}
        self._last: Event | None = None

    def see(self, event: Event) -> None:
        self._last = event
        gone = event.position in self._removed
        state = msgspec.convert(event.data["state"], BudgetState)
        written = [KeptTally(period=p, tally=state.tally(p), at=state.at) for p in PERIODS]
        if event.type == TOTALS_KEPT:
            kept = msgspec.convert(event.data, TotalsKept)
            written = [*kept.totals, *written]
            for limit in kept.limits:
                self._limits[limit.change.period] = (limit, gone)
        elif event.type == LIMIT_SET:
            change = msgspec.convert(event.data, LimitSet).change
            self._limits[change.period] = (
                KeptLimit(change=change, set_at=state.at, set_by=event.meta.user_id),
                gone,
            )
        for tally in written:
            self._totals[(tally.period, tally.tally.key)] = (tally, gone)

    def decide(self) -> NewEvent | None:
        totals = [tally for tally, gone in self._totals.values() if gone]
        limits = [limit for limit, gone in self._limits.values() if gone]
        if self._last is None or not (totals or limits):
            return None
        kept = TotalsKept(state=state_after(self._unit, self._last), totals=totals, limits=limits)
        return NewEvent(type=TOTALS_KEPT, data=msgspec.to_builtins(kept))


def stream_of(unit: str) -> str:
    return f"budget:{unit}"


def day_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def month_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def usage_event_id(partition: Partition, unit: str, client_id: str) -> str:
    """The event id of a usage the client named: the same (partition, unit, id), the same event."""
    name = f"{partition.tenant_id}/{partition.env}/{partition.project_id}/{unit}/{client_id}"
    return str(uuid.uuid5(_IDS, name))


def state_after(unit: str, last: Event | None) -> BudgetState:
    """The unit's state after the last event of its stream (a fresh state before the first)."""
    if last is None:
        return BudgetState(unit=unit)
    snapshot: BudgetState = msgspec.convert(last.data["state"], BudgetState)
    return snapshot


def decide_usage(state: BudgetState, usage: Usage, now: datetime, *, partition: Partition) -> NewEvent:
    """Record `usage`, or raise `BudgetExceeded` when it would take a period past a hard limit.

    Soft limits it takes past are reported in the event's `warnings`. A usage with an `id` gets the
    event id `usage_event_id` derives, so the spine answers a retry with the original event.
    """
    current = state.as_of(now)
    warnings: list[LimitWarning] = []
    for period, rule in sorted(current.limits.items(), key=lambda item: PERIODS.index(item[0])):
        used = current.tally(period).amount
        after = _add(used, usage.amount)
        if after <= rule.limit:
            continue
        if rule.hard:
            raise BudgetExceeded(usage.unit, period, rule.limit, used, usage.amount)
        warnings.append(LimitWarning(period=period, limit=rule.limit, used=after))
    after_state = msgspec.structs.replace(
        current, day=current.day.plus(usage), month=current.month.plus(usage), total=current.total.plus(usage)
    )
    recorded = UsageRecorded(usage=usage, warnings=warnings, state=after_state)
    event_id = None if usage.id is None else usage_event_id(partition, usage.unit, usage.id)
    return NewEvent(type=USAGE_RECORDED, data=msgspec.to_builtins(recorded), id=event_id)


def decide_limit(state: BudgetState, change: LimitChange, now: datetime) -> NewEvent:
    """Set a limit; a hard limit below what is already used refuses the next usage, not this."""
    current = state.as_of(now)
    limits = {**current.limits, change.period: Rule(limit=change.limit, hard=change.hard)}
    recorded = LimitSet(change=change, state=msgspec.structs.replace(current, limits=limits))
    return NewEvent(type=LIMIT_SET, data=msgspec.to_builtins(recorded))


def _add(a: float, b: float) -> float:
    return round(a + b, DECIMALS)


def ledger_key(position: int, *, run_id: str | None = None, unit: str | None = None) -> str:
    """Ledger keys sort by position inside each index: every usage, one run's, one unit's."""
    return f"{ledger_prefix(run_id=run_id, unit=unit)}{position:020d}"


def ledger_prefix(*, run_id: str | None = None, unit: str | None = None) -> str:
    # neither run ids nor units may contain '|': a prefix never matches another run or unit
    if run_id is not None:
        return f"run|{run_id}|"
    return "all|" if unit is None else f"unit|{unit}|"


def totals_prefix(period: Period, key: str) -> str:
    """Period first, so that one prefix lists every unit's totals of one day, month or all time."""
    return "total|" if period == "total" else f"{period}|{key}|"


def limit_key(unit: str, period: Period) -> str:
    return f"{unit}|{period}"


class BudgetProjection:
    """The ledger (one document per usage, in three indexes), totals per period and limits.

    Each event's snapshot holds the totals after it, so every op is an upsert of a value the event
    carries: re-delivered or rebuilt, the view is the same.
    """

    name = "budget"
    handles = frozenset({USAGE_RECORDED, LIMIT_SET, TOTALS_KEPT})
    collections = frozenset({LEDGER, TOTALS, LIMITS})
    version = 1

    def apply(self, event: Event) -> list[ViewOp]:
        if event.type == USAGE_RECORDED:
            recorded = msgspec.convert(event.data, UsageRecorded)
            return [*_ledger(event, recorded), *_totals(event, recorded.state)]
        if event.type == TOTALS_KEPT:
            kept = msgspec.convert(event.data, TotalsKept)
            unit, state = kept.state.unit, kept.state
            current = {(p, state.tally(p).key) for p in PERIODS}  # written from the state below
            ops = [
                _tally(event, unit, t.period, t.tally, t.at)
                for t in kept.totals
                if (t.period, t.tally.key) not in current
            ]
            limits = [_limit(event, limit.change, limit.set_at, limit.set_by) for limit in kept.limits]
            return [*ops, *limits, *_totals(event, state)]
        limit_set = msgspec.convert(event.data, LimitSet)
        return [
            _limit(event, limit_set.change, limit_set.state.at, event.meta.user_id),
            *_totals(event, limit_set.state),
        ]


def _ledger(event: Event, recorded: UsageRecorded) -> list[ViewOp]:
    usage = recorded.usage
    data = {
        **msgspec.to_builtins(usage),
        "position": event.position,
        "at": msgspec.to_builtins(recorded.state.at),
        "user_id": event.meta.user_id,
        "warnings": msgspec.to_builtins(recorded.warnings),
    }
    keys = [ledger_key(event.position), ledger_key(event.position, unit=usage.unit)]
    if usage.run_id is not None:
        keys.append(ledger_key(event.position, run_id=usage.run_id))
    return [Upsert(collection=LEDGER, key=key, data=data, position=event.position) for key in keys]


def _totals(event: Event, state: BudgetState) -> list[ViewOp]:
    return [_tally(event, state.unit, period, state.tally(period), state.at) for period in PERIODS]


def _tally(event: Event, unit: str, period: Period, tally: Tally, at: datetime | None) -> ViewOp:
    data = {"unit": unit, "period": period, **msgspec.to_builtins(tally),
            "at": msgspec.to_builtins(at), "position": event.position}  # fmt: skip
    key = f"{totals_prefix(period, tally.key)}{unit}"
    return Upsert(collection=TOTALS, key=key, data=data, position=event.position)


def _limit(event: Event, change: LimitChange, set_at: datetime | None, set_by: str | None) -> ViewOp:
    data = {**msgspec.to_builtins(change), "set_at": msgspec.to_builtins(set_at),
            "set_by": set_by, "position": event.position}  # fmt: skip
    return Upsert(
        collection=LIMITS, key=limit_key(change.unit, change.period), data=data, position=event.position
    )
