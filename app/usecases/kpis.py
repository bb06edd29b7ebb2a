"""KPI writes decided on the log, and series read from the rollups the projection keeps.

A definition replaces whatever the KPI's definition stream holds (`If-Match` makes it a
compare-and-set). Values are refused (404) unless that stream holds a definition, read from the
log: a KPI defined a moment ago takes values at once, whatever the view has caught up with. KPIs
are never deleted, so once the stream holds a definition nothing can make the values append wrong.

A batch of values is one append, atomic. When part of it was stored before (a retry of a batch
whose answer was lost, resent with some new values), each value is appended on its own: the
stored ones answer their original positions, the others are appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.http.preconditions import Precondition
from app.usecases.unit_of_work import append_expecting, expected_at, stream_version
from domain.context import RequestContext
from domain.errors import IdempotencyConflict, InvalidRequest, KpiConflict, KpiNotFound, KpiTooManySeries
from domain.events import ANY, AppendResult
from domain.ids import new_event_ids
from domain.kpis import (
    DIMENSION_VALUES,
    MAX_SERIES,
    ROLLUPS,
    Definition,
    Point,
    SeriesQuery,
    Value,
    check_time,
    defined_event,
    definition_stream,
    point_of,
    recorded_event,
    series_prefix,
    values_prefix,
    values_stream,
)
from domain.ports import EventSpine
from projections.runtime import Runner

READ_PAGE = 1000  # rollups a series reads at a time from the view


@dataclass(frozen=True, slots=True)
class Recorded:
    """Each value's event id, in the order sent, and the highest position among them."""

    ids: list[str]
    position: int


async def define(
    spine: EventSpine, ctx: RequestContext, name: str, definition: Definition, wanted: Precondition | None
) -> AppendResult:
    stream = definition_stream(name)
    expected = await expected_at(wanted, spine, ctx.partition, stream)
    event = defined_event(name, definition, ctx.user_id)
    return await append_expecting(spine, ctx, stream, [event], expected, conflict=KpiConflict)


def check_values(values: Sequence[Value], now: datetime, *, batch: bool) -> list[datetime]:
    """Each value's time (`now` when it names none), once every one is in range and no client id
    repeats; the first that is not raises, and nothing is appended."""
    seen: dict[str, int] = {}
    times = []
    for index, value in enumerate(values):
        field = f"values[{index}]" if batch else ""
        if value.id is not None:
            if value.id in seen:
                raise InvalidRequest(f"{field}.id repeats the id of values[{seen[value.id]}]")
            seen[value.id] = index
        at = now if value.at is None else check_time(value.at, now, f"{field}.at" if batch else "at")
        times.append(at)
    return times


async def record(
    spine: EventSpine, ctx: RequestContext, name: str, values: Sequence[Value], times: Sequence[datetime]
) -> Recorded:
    """Append checked values (`check_values`) once the KPI's definition is in the log."""
    if await stream_version(spine, ctx.partition, definition_stream(name)) == 0:
        raise KpiNotFound(name)
    fresh = new_event_ids(len(values))
    events = [
        recorded_event(name, value, at, partition=ctx.partition, new_id=new_id)
        for value, at, new_id in zip(values, times, fresh, strict=True)
    ]
    stream = values_stream(name)
    try:
        result = await append_expecting(spine, ctx, stream, events, ANY)
        top = result.last_position
    except IdempotencyConflict:
        each = [await append_expecting(spine, ctx, stream, [event], ANY) for event in events]
        top = max(result.last_position for result in each)
    return Recorded(ids=[event.id or "" for event in events], position=top)


async def series(
    runner: Runner, name: str, query: SeriesQuery, aggregation: str
) -> list[tuple[str | None, list[Point]]]:
    """(dimension value, points) of each series the query asks for: the total, one value of a
    dimension, or every value of it (at most `MAX_SERIES`, else `KpiTooManySeries`), in order."""
    if query.dimension == "none" or query.value is not None:
        keys: list[str | None] = [query.value]
    else:
        prefix = values_prefix(name, query.dimension)
        docs = await runner.list(DIMENSION_VALUES, prefix=prefix, limit=MAX_SERIES + 1)
        if len(docs) > MAX_SERIES:
            raise KpiTooManySeries(query.dimension, MAX_SERIES)
        keys = [doc.key[len(prefix) :] for doc in docs]
    return [(key, await _points(runner, name, query, key, aggregation)) for key in keys]


async def _points(
    runner: Runner, name: str, query: SeriesQuery, value: str | None, aggregation: str
) -> list[Point]:
    prefix = series_prefix(name, query.bucket, query.dimension, value)
    # bucket starts end in "Z": cut it, and the first bucket's key is the first one after this
    after = prefix + query.start[:-1]
    points: list[Point] = []
    while True:
        docs = await runner.list(ROLLUPS, prefix=prefix, after=after, limit=READ_PAGE)
        for doc in docs:
            if doc.key[len(prefix) :] >= query.end:
                return points
            points.append(point_of(doc.data, aggregation))
        if len(docs) < READ_PAGE:
            return points
        after = docs[-1].key
