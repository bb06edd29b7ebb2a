"""Budget rules: snapshots folded from the last event, day/month rollover, hard and soft limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from adapters.memory.views import MemoryViewStore
from domain.budget import (
    LEDGER,
    LIMITS,
    TOTALS,
    BudgetProjection,
    BudgetState,
    LimitChange,
    Usage,
    UsageRecorded,
    decide_limit,
    decide_usage,
    state_after,
    usage_event_id,
)
from domain.errors import BudgetExceeded
from domain.events import Event, EventMeta, NewEvent
from domain.partition import Partition
from domain.views import space_of

P = Partition(tenant_id="t1", env="dev", project_id="p1")
SPACE = space_of(P.key, "budget", 0)
NOON = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class Stream:
    """The budget stream of one unit, folded the way the app does: the last event is the state."""

    def __init__(self, unit: str = "tokens") -> None:
        self.unit = unit
        self.events: list[Event] = []

    @property
    def state(self) -> BudgetState:
        return state_after(self.unit, self.events[-1] if self.events else None)

    def append(self, new: NewEvent) -> Event:
        n = len(self.events) + 1
        event = Event(
            id=new.id or f"e-{n}",
            type=new.type,
            stream=f"budget:{self.unit}",
            version=n,
            position=n,
            data=new.data,
            meta=EventMeta(tenant_id="t1", env="dev", project_id="p1", user_id="u1"),
            recorded_at=NOON,
        )
        self.events.append(event)
        return event

    def use(self, amount: float, now: datetime = NOON, **fields: Any) -> UsageRecorded:
        usage = Usage(amount=amount, unit=self.unit, **fields)
        event = self.append(decide_usage(self.state, usage, now, partition=P))
        return msgspec.convert(event.data, UsageRecorded)

    def limit(self, period: str, limit: float, *, hard: bool, now: datetime = NOON) -> None:
        change = msgspec.convert(
            {"period": period, "unit": self.unit, "limit": limit, "hard": hard}, LimitChange
        )
        self.append(decide_limit(self.state, change, now))


def test_every_event_carries_the_state_after_it() -> None:
    stream = Stream()
    stream.use(3, cost_usd=0.5)
    stream.limit("day", 100, hard=True)
    recorded = stream.use(4, cost_usd=0.25, model="m", run_id="run-1")
    state = stream.state
    assert state == recorded.state
    assert (state.day.key, state.day.amount, state.day.cost_usd, state.day.count) == (
        "2026-11-28",
        7,
        0.75,
        2,
    )
    assert (state.month.key, state.month.amount) == ("2026-11", 7)
    assert (state.total.key, state.total.amount, state.total.count) == ("total", 7, 2)
    assert state.limits["day"].limit == 100
    assert state.at == NOON


def test_a_new_day_starts_the_day_from_zero_and_a_new_month_the_month() -> None:
    stream = Stream()
    stream.use(5)
    tomorrow = NOON + timedelta(days=1)
    assert stream.use(2, now=tomorrow).state.day.amount == 2
    assert (stream.state.day.key, stream.state.month.amount, stream.state.total.amount) == (
        "2026-11-29",
        7,
        7,
    )
    next_month = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    state = stream.use(1, now=next_month).state
    assert (state.day.key, state.day.amount, state.month.key, state.month.amount) == (
        "2026-12-01",
        1,
        "2026-12",
        1,
    )
    assert state.total.amount == 8


def test_days_are_utc_days() -> None:
    stream = Stream()
    evening_in_new_york = datetime(2026, 11, 28, 20, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert stream.use(1, now=evening_in_new_york).state.day.key == "2026-11-29"


def test_a_clock_behind_the_stream_decides_as_of_the_last_decision() -> None:
    stream = Stream()
    stream.use(5, now=NOON + timedelta(days=1))
    state = stream.use(1, now=NOON).state  # another process, its clock a day behind
    assert (state.day.key, state.day.amount, state.at) == ("2026-11-29", 6, NOON + timedelta(days=1))


def test_a_hard_limit_refuses_what_would_pass_it_and_accepts_what_reaches_it() -> None:
    stream = Stream()
    stream.limit("total", 10, hard=True)
    stream.use(7)
    with pytest.raises(BudgetExceeded) as refused:
        stream.use(4)
    assert refused.value.details() == {
        "unit": "tokens",
        "period": "total",
        "limit": 10,
        "used": 7,
        "amount": 4,
    }
    assert refused.value.error_code == "budget.exceeded"
    assert stream.use(3).state.total.amount == 10
    with pytest.raises(BudgetExceeded):
        stream.use(0.001)
    assert len(stream.events) == 3  # refusals record nothing


def test_the_day_limit_binds_within_the_day_and_frees_the_next_day() -> None:
    stream = Stream()
    stream.limit("day", 5, hard=True)
    stream.limit("total", 100, hard=True)
    stream.use(5)
    with pytest.raises(BudgetExceeded) as refused:
        stream.use(1)
    assert refused.value.period == "day"
    assert stream.use(5, now=NOON + timedelta(days=1)).state.total.amount == 10


def test_a_soft_limit_accepts_and_warns_with_what_is_used() -> None:
    stream = Stream()
    stream.limit("month", 10, hard=False)
    assert stream.use(10).warnings == []
    recorded = stream.use(2)
    assert [msgspec.to_builtins(w) for w in recorded.warnings] == [
        {"period": "month", "limit": 10, "used": 12}
    ]
    assert recorded.state.month.amount == 12


def test_hard_refuses_before_soft_warns() -> None:
    stream = Stream()
    stream.limit("day", 1, hard=False)
    stream.limit("total", 3, hard=True)
    assert [w.period for w in stream.use(2).warnings] == ["day"]
    with pytest.raises(BudgetExceeded):
        stream.use(2)


def test_a_limit_change_replaces_the_rule_and_keeps_the_totals() -> None:
    stream = Stream()
    stream.limit("total", 100, hard=True)
    stream.use(50)
    stream.limit("total", 40, hard=True)  # below what is used: the next usage is refused
    assert stream.state.total.amount == 50
    with pytest.raises(BudgetExceeded):
        stream.use(1)
    stream.limit("total", 40, hard=False)
    assert stream.use(1).warnings[0].used == 51
    assert set(stream.state.limits) == {"total"}


def test_a_limit_of_zero_refuses_everything() -> None:
    stream = Stream()
    stream.limit("day", 0, hard=True)
    with pytest.raises(BudgetExceeded):
        stream.use(0.5)


def test_decimal_amounts_do_not_drift_past_a_limit() -> None:
    stream = Stream("usd")
    stream.limit("total", 0.3, hard=True)
    for _ in range(3):
        stream.use(0.1)
    assert stream.state.total.amount == 0.3


def test_a_usage_id_is_a_deterministic_event_id_of_its_partition_and_unit() -> None:
    usage = Usage(amount=1, unit="tokens", id="call-1")
    new = decide_usage(BudgetState(unit="tokens"), usage, NOON, partition=P)
    assert new.id == usage_event_id(P, "tokens", "call-1")
    other_project = Partition(tenant_id="t1", env="dev", project_id="p2")
    assert usage_event_id(other_project, "tokens", "call-1") != new.id
    assert usage_event_id(P, "usd", "call-1") != new.id
    assert (
        decide_usage(BudgetState(unit="tokens"), Usage(amount=1, unit="tokens"), NOON, partition=P).id is None
    )


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 0, "unit": "tokens"},
        {"amount": -1, "unit": "tokens"},
        {"amount": 1, "unit": "tokens", "cost_usd": -0.01},
        {"amount": 1, "unit": "bad unit"},
        {"amount": 1, "unit": "a|b"},
        {"amount": 1, "unit": "x" * 65},
        {"amount": 1e16, "unit": "tokens"},
        {"amount": 1, "unit": "tokens", "id": "not an id"},
    ],
)
def test_usages_that_break_a_rule_do_not_decode(body: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(body, Usage)


@pytest.mark.parametrize(
    "body",
    [
        {"period": "week", "unit": "tokens", "limit": 1, "hard": True},
        {"period": "day", "unit": "tokens", "limit": -1, "hard": True},
        {"period": "day", "unit": "tokens", "limit": 1},
    ],
)
def test_limit_changes_that_break_a_rule_do_not_decode(body: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(body, LimitChange)


def _stream_of_a_week() -> Stream:
    stream = Stream()
    stream.limit("day", 5, hard=False)
    for day in range(7):
        stream.use(day + 1, now=NOON + timedelta(days=day), run_id=f"run-{day % 2}", cost_usd=0.01)
    stream.limit("total", 100, hard=True, now=NOON + timedelta(days=6))
    return stream


async def _view(batches: list[list[Event]]) -> dict[str, list[tuple[str, int, dict[str, Any]]]]:
    store, projection = MemoryViewStore(), BudgetProjection()
    for batch in batches:
        ops = [op for event in batch for op in projection.apply(event)]
        await store.apply(SPACE, ops, checkpoint=batch[-1].position)
    return {
        collection: [(d.key, d.position, d.data) for d in await store.list(SPACE, collection, limit=10_000)]
        for collection in (LEDGER, TOTALS, LIMITS)
    }


async def test_a_rebuilt_view_equals_the_incremental_one_and_redelivery_changes_nothing() -> None:
    events = _stream_of_a_week().events
    incremental = await _view([[event] for event in events])
    assert incremental == await _view([events])
    assert incremental == await _view([events[:5], events[2:], events])


async def test_the_view_holds_ledger_indexes_totals_per_period_and_limits() -> None:
    view = await _view([_stream_of_a_week().events])
    ledger_keys = [key for key, _, _ in view[LEDGER]]
    assert len([k for k in ledger_keys if k.startswith("all|")]) == 7
    assert [k for k in ledger_keys if k.startswith("run|run-1|")] == [
        "run|run-1|00000000000000000003",
        "run|run-1|00000000000000000005",
        "run|run-1|00000000000000000007",
    ]
    totals = {key: data["amount"] for key, _, data in view[TOTALS]}
    assert totals["total|tokens"] == 28
    assert totals["day|2026-11-28|tokens"] == 1
    assert totals["day|2026-12-04|tokens"] == 7
    assert totals["month|2026-11|tokens"] == 6  # 1 + 2 + 3 in November
    assert totals["month|2026-12|tokens"] == 22
    limits = {key: (data["limit"], data["hard"]) for key, _, data in view[LIMITS]}
    assert limits == {"tokens|day": (5, False), "tokens|total": (100, True)}
    warned = [data["warnings"] for key, _, data in view[LEDGER] if key.startswith("all|")]
    assert warned[4] == []  # 5 on a day with a soft limit of 5: reached, not passed
    assert warned[5] == [{"period": "day", "limit": 5, "used": 6}]
