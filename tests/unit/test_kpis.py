"""KPIs without I/O: the quantile sketch's accuracy and bounds, the fold's figures and its
idempotence under re-delivery, bucket keys, and the checks of a series query."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import sketch
from domain.errors import (
    InvalidIdentifier,
    InvalidRequest,
    KpiRangeInvalid,
    KpiRangeTooLarge,
    KpiTimeOutOfRange,
)
from domain.events import Event, EventMeta
from domain.kpis import (
    DIMENSION_VALUES,
    RECORDED,
    ROLLUPS,
    KpisProjection,
    Recorded,
    bucket_start,
    check_time,
    point_of,
    query_series,
    rollup_key,
)
from domain.views import Upsert, ViewDoc

NOW = datetime(2026, 3, 10, 12, 30, 15, tzinfo=UTC)
TOLERANCE = sketch.ACCURACY * (1 + 1e-9)  # the bound itself, with room for float rounding


def exact(values: list[float], q: float) -> float:
    return sorted(values)[math.floor(q * (len(values) - 1))]


def close(estimate: float | None, value: float) -> bool:
    assert estimate is not None
    return abs(estimate - value) <= TOLERANCE * abs(value)


values = st.lists(
    st.one_of(
        st.just(0.0),
        st.floats(min_value=-1e9, max_value=1e9, allow_nan=False).filter(lambda x: abs(x) >= 1e-6 or x == 0),
        st.integers(-1000, 1000).map(float),
    ),
    min_size=1,
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(values=values, q=st.sampled_from([0.0, 0.5, 0.95, 1.0]))
def test_a_quantile_is_within_one_percent_of_the_exact_one(values: list[float], q: float) -> None:
    built = sketch.empty()
    for value in values:
        built = sketch.add(built, value)
    assert sketch.count(built) == len(values)
    assert close(sketch.quantile(built, q), exact(values, q))


def test_quantiles_of_random_data_with_negatives_and_zeros() -> None:
    rng = random.Random(16)
    data = [rng.lognormvariate(3, 2) * rng.choice((-1, 1, 1)) for _ in range(5000)] + [0.0] * 300
    built = sketch.empty()
    for value in data:
        built = sketch.add(built, value)
    for q in (0.01, 0.25, 0.5, 0.95, 0.99):
        assert close(sketch.quantile(built, q), exact(data, q)), q
    assert sketch.quantile(sketch.empty(), 0.5) is None


def test_sketches_merge_as_if_built_from_both() -> None:
    rng = random.Random(3)
    a, b = [rng.uniform(-50, 500) for _ in range(400)], [rng.uniform(0, 5) for _ in range(300)]
    one, two, both = sketch.empty(), sketch.empty(), sketch.empty()
    for value in a:
        one, both = sketch.add(one, value), sketch.add(both, value)
    for value in b:
        two, both = sketch.add(two, value), sketch.add(both, value)
    assert sketch.merge(one, two) == both


def test_bins_are_bounded_by_collapsing_the_smallest_magnitudes() -> None:
    built = sketch.empty()
    magnitudes = [1.03**n for n in range(-1500, 1500)]  # about 3000 distinct bins
    for value in magnitudes:
        built = sketch.add(built, value)
    assert len(built["pos"]) == sketch.MAX_BINS
    assert sketch.count(built) == len(magnitudes)
    assert close(sketch.quantile(built, 0.95), exact(magnitudes, 0.95))  # the large ones keep 1%
    assert close(sketch.quantile(built, 1.0), max(magnitudes))
    survives = msgspec.json.decode(msgspec.json.encode(built))
    assert survives == built  # plain JSON, as a view document stores it


# The fold

META = EventMeta(tenant_id="t1", env="dev", project_id="p1", surface_id="web", app_id="app1", user_id="u1")


def value_event(position: int, value: float, at: str, run_id: str | None = None) -> Event:
    data = msgspec.to_builtins(Recorded(name="lat", value=value, at=at, run_id=run_id))
    return Event(
        id=f"e{position}", type=RECORDED, stream="kpi:values:lat", version=position, position=position,
        data=data, meta=META, recorded_at=NOW,
    )  # fmt: skip


def folded(events: list[Event]) -> dict[tuple[str, str], ViewDoc]:
    """The view the runtime would build: each event folded onto the documents before it."""
    projection, docs = KpisProjection(), {}
    for event in events:
        reads = {doc: docs.get(doc) for doc in projection.reads(event)}
        for op in projection.fold(event, reads):
            assert isinstance(op, Upsert)
            docs[op.collection, op.key] = ViewDoc(
                collection=op.collection, key=op.key, position=op.position, data=op.data
            )
    return docs


def test_a_value_counts_in_every_bucket_size_and_dimension_it_has() -> None:
    docs = folded([value_event(1, 2.5, "2026-03-10T12:29:59.000001Z", run_id="r1")])
    rollups = sorted(key for collection, key in docs if collection == ROLLUPS)
    assert len(rollups) == 3 * 4  # minute, hour, day x total, app, surface, run
    assert rollup_key("lat", "minute", "run", "r1", "2026-03-10T12:29:00Z") in rollups
    assert rollup_key("lat", "day", "none", None, "2026-03-10T00:00:00Z") in rollups
    assert sorted(data.data["value"] for (collection, _), data in docs.items() if collection == DIMENSION_VALUES) == [
        "app1", "r1", "web"]  # fmt: skip


def test_the_fold_keeps_count_sum_min_max_last_and_quantiles() -> None:
    sent = [(5.0, "2026-03-10T12:00:03.000000Z"), (-1.0, "2026-03-10T12:00:09.000000Z"),
            (7.5, "2026-03-10T12:00:01.000000Z"), (0.0, "2026-03-10T12:00:09.000000Z")]  # fmt: skip
    docs = folded([value_event(n, value, at) for n, (value, at) in enumerate(sent, start=1)])
    doc = docs[ROLLUPS, rollup_key("lat", "hour", "none", None, "2026-03-10T12:00:00Z")]
    point = point_of(doc.data, "p95")
    assert (point.count, point.sum, point.min, point.max) == (4, 11.5, -1.0, 7.5)
    assert point.last == 0.0  # the latest time; of two at 12:00:09, the later position
    assert (point.p50, point.p95) == (0.0, pytest.approx(5.0, rel=0.01))
    assert point.value == point.p95
    assert doc.position == 4


def test_a_document_that_counts_the_event_already_is_left_as_it_is() -> None:
    events = [value_event(n, float(n), "2026-03-10T12:00:00.000000Z") for n in range(1, 6)]
    docs = folded(events)
    projection = KpisProjection()
    for event in events:  # every one delivered again, onto the documents that count it
        assert projection.fold(event, {doc: docs.get(doc) for doc in projection.reads(event)}) == []
    # onto documents that count up to the third: only the fourth and fifth are added again
    upto = folded(events[:3])
    again = dict(upto)
    for event in events:
        for op in projection.fold(event, {doc: again.get(doc) for doc in projection.reads(event)}):
            assert isinstance(op, Upsert)
            again[op.collection, op.key] = ViewDoc(
                collection=op.collection, key=op.key, position=op.position, data=op.data
            )
    assert again == docs


def test_buckets_start_at_the_utc_minute_hour_and_day() -> None:
    at = "2026-03-10T12:34:56.789012Z"
    assert [bucket_start(b, at) for b in ("minute", "hour", "day")] == [
        "2026-03-10T12:34:00Z", "2026-03-10T12:00:00Z", "2026-03-10T00:00:00Z"]  # fmt: skip


def test_names_and_dimension_values_never_share_a_key() -> None:
    # length-prefixed: a name that starts with another's, a value holding the separators of another
    assert not rollup_key("a", "day", "run", "b", "x").startswith(rollup_key("a", "day", "run", "", ""))
    assert rollup_key("a:b", "day", "none", None, "s") != rollup_key("a", "day", "none", "b", "s")


def test_a_value_time_is_refused_beyond_five_minutes_ahead_or_400_days_back() -> None:
    assert check_time(datetime(2026, 3, 10, 12, 35, 15), NOW, "at") == datetime(
        2026, 3, 10, 12, 35, 15, tzinfo=UTC
    )
    far = (
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5))),
    )
    for at in (datetime(2026, 3, 10, 12, 35, 16, tzinfo=UTC), datetime(2025, 2, 2, tzinfo=UTC), *far):
        with pytest.raises(KpiTimeOutOfRange):
            check_time(at, NOW, "at")


def test_a_series_query_is_aligned_and_bounded() -> None:
    query = query_series("hour", "2026-03-10T09:59:59Z", "2026-03-10T12:00:00.5Z", "app", "app1", NOW)
    assert (query.start, query.end) == ("2026-03-10T09:00:00Z", "2026-03-10T12:00:01Z")
    default = query_series("minute", None, None, "none", None, NOW)
    assert (default.start, default.end) == ("2026-03-10T11:30:00Z", "2026-03-10T12:30:15Z")
    assert (
        query_series("minute", "2026-03-03T17:50:15Z", None, "none", None, NOW).start
        == "2026-03-03T17:50:00Z"
    )
    with pytest.raises(KpiRangeTooLarge):
        query_series("minute", "2026-03-03T13:50:59Z", None, "none", None, NOW)  # from 13:50: 10 001
    with pytest.raises(KpiRangeInvalid):
        query_series("day", "2026-03-10T00:00:00Z", "2026-03-10T00:00:00Z", "none", None, NOW)
    with pytest.raises(InvalidRequest):
        query_series("day", None, None, "none", "app1", NOW)
    with pytest.raises(InvalidIdentifier):
        query_series("day", None, None, "surface", "a b", NOW)
