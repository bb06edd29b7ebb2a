"""Analytics rules: the event a request makes, the projection's keys and counts, query plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from domain.analytics import (
    BY_ID,
    BY_NAME,
    BY_RUN,
    BY_RUN_NAME,
    COUNTS,
    COUNTS_BY_NAME,
    EVENTS,
    AnalyticsProjection,
    Tracked,
    day_of,
    event_id,
    query_counts,
    query_events,
    recorded_event,
    stream_of,
)
from domain.errors import InvalidCursor, InvalidRequest
from domain.events import Event, EventMeta
from domain.partition import Partition
from domain.views import Upsert

P = Partition(tenant_id="t1", env="dev", project_id="p1")
LATE = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)
META = EventMeta(
    tenant_id="t1",
    env="dev",
    project_id="p1",
    mode="lab",
    user_id="u1",
    surface_id="web",
    app_id="app1",
    request_id="r1",
)


def stored(tracked: Tracked, at: datetime, *, version: int, position: int) -> Event:
    new = recorded_event(tracked, at, partition=P, new_id=f"e{position}")
    return Event(
        id=new.id or "",
        type=new.type,
        stream=stream_of(tracked.name, day_of(at)),
        version=version,
        position=position,
        data=new.data,
        meta=META,
        recorded_at=at,
    )


def test_the_day_and_stream_are_the_utc_day_of_the_server_time() -> None:
    evening_in_new_york = datetime(2026, 11, 28, 20, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert day_of(evening_in_new_york) == "2026-11-29"
    assert stream_of("page.view", "2026-11-29") == "analytics:page.view:2026-11-29"


def test_a_client_id_names_one_event_per_partition() -> None:
    assert event_id(P, "a") == event_id(P, "a") != event_id(P, "b")
    assert event_id(P, "a") != event_id(Partition(tenant_id="t1", env="dev", project_id="p2"), "a")
    named = recorded_event(Tracked(name="x", platform="web", id="a"), LATE, partition=P, new_id="unused")
    assert (named.id, named.data["client_id"]) == (event_id(P, "a"), "a")
    fresh = recorded_event(Tracked(name="x", platform="web"), LATE, partition=P, new_id="fresh")
    assert (fresh.id, fresh.data["client_id"]) == ("fresh", None)


def test_attribution_in_the_body_is_never_recorded() -> None:
    claimed = Tracked(name="x", platform="web", tenant_id="t1", app_id="app1", surface_id="web")
    data = recorded_event(claimed, LATE, partition=P, new_id="e").data
    assert not data.keys() & {"tenant_id", "app_id", "surface_id", "mode", "project_id", "user_id", "env"}
    record = AnalyticsProjection().apply(stored(claimed, LATE, version=1, position=1))[0]
    assert isinstance(record, Upsert)
    assert record.data["attribution"] == {
        "tenant_id": "t1",
        "mode": "lab",
        "env": "dev",
        "project_id": "p1",
        "app_id": "app1",
        "surface_id": "web",
        "user_id": "u1",
    }


def test_the_projection_keys_records_by_time_under_each_index_and_counts_by_version() -> None:
    event = stored(Tracked(name="view", platform="web", run_id="r1"), LATE, version=7, position=42)
    ops = AnalyticsProjection().apply(event)
    assert all(isinstance(op, Upsert) and op.position == 42 for op in ops)
    keys = {(op.collection, op.key) for op in ops}
    time_key = "2026-11-28T23:30:00.000000Z|0000000000000000042"
    assert keys == {
        (EVENTS, time_key),
        (BY_NAME, f"4:view|{time_key}"),
        (BY_RUN, f"2:r1|{time_key}"),
        (BY_RUN_NAME, f"2:r1|4:view|{time_key}"),
        (BY_ID, "e42"),
        (COUNTS, "2026-11-28|view"),
        (COUNTS_BY_NAME, "4:view|2026-11-28|"),
    }
    [count] = [op for op in ops if op.collection == COUNTS]
    assert isinstance(count, Upsert)
    assert count.data == {"name": "view", "day": "2026-11-28", "count": 7, "position": 42}
    assert AnalyticsProjection().apply(event) == ops  # pure: the same event, the same ops


def test_names_and_runs_are_length_prefixed_so_no_prefix_reads_another() -> None:
    def key(name: str, run: str) -> str:
        [op] = [
            op
            for op in AnalyticsProjection().apply(
                stored(Tracked(name=name, platform="web", run_id=run), LATE, version=1, position=1)
            )
            if op.collection == BY_RUN_NAME
        ]
        return op.key

    assert not key("ab", "r").startswith(
        query_events(run_id="r", name="a", after=None, start=None, end=None).prefix
    )
    assert key("a", "r").startswith(
        query_events(run_id="r", name="a", after=None, start=None, end=None).prefix
    )


def test_event_queries_plan_a_range_of_one_prefix() -> None:
    query = query_events(
        run_id=None, name="view", after=None, start="2026-11-28T13:00:00+01:00", end="2026-11-29T00:00:00"
    )
    assert (query.collection, query.prefix) == (BY_NAME, "4:view|")
    assert (query.after, query.before) == ("2026-11-28T12:00:00.000000Z", "2026-11-29T00:00:00.000000Z")
    cursor = "2026-11-28T15:00:00.000000Z|0000000000000000009"
    assert (
        query_events(run_id=None, name=None, after=cursor, start="2026-11-28T00:00:00Z", end=None).after
        == cursor
    )
    with pytest.raises(InvalidCursor):
        query_events(run_id=None, name=None, after="9", start=None, end=None)
    with pytest.raises(InvalidRequest):
        query_events(run_id=None, name=None, after=None, start="noon", end=None)


def test_count_queries_take_days_and_their_own_cursors() -> None:
    query = query_counts(name=None, after=None, start="2026-11-01", end="2026-12-01")
    assert (query.collection, query.prefix, query.after, query.before) == (
        COUNTS,
        "",
        "2026-11-01",
        "2026-12-01",
    )
    named = query_counts(name="view", after="2026-11-03|view", start="2026-11-01", end=None)
    assert (named.collection, named.prefix, named.after) == (COUNTS_BY_NAME, "4:view|", "2026-11-03|")
    for bad in ("2026-11-01T00:00:00Z", "2026-02-30", "Nov 1"):
        with pytest.raises(InvalidRequest):
            query_counts(name=None, after=None, start=bad, end=None)
    with pytest.raises(InvalidCursor):
        query_counts(name=None, after="2026-11-03", start=None, end=None)


def test_properties_are_bounded() -> None:
    with pytest.raises(msgspec.ValidationError, match="16384 bytes"):
        msgspec.convert({"name": "x", "platform": "web", "properties": {"k": "x" * 16_400}}, Tracked)
