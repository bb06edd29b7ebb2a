"""KPIs: a project's named measures, their values attributed from the request, rolled up by bucket.

A KPI's definition (unit, aggregation, description) is one stream, `kpi:def:{name}`, versioned like
any resource (`If-Match`). Its values are appended to `kpi:values:{name}` with expected version
`any`, once the definition stream shows the KPI exists: that is decided on the log, never on the
view. Each value's `at` (the server's clock unless the client names a time) picks its buckets;
attribution (app, surface, user) is the request context stamped on the event's meta, and the run
is the client's `run_id`.

The projection keeps, per (bucket size, dimension, dimension value, bucket start), one rollup
document: count, sum, min, max, last (the value of the greatest (at, position)) and a quantile
sketch (`domain.sketch`) for p50/p95. Dimensions: `none` (the KPI's total), `app`, `surface`,
`run`; a value counts in each it has. A rollup adds each event to what the document holds, so it
is a folding projection (`domain.ports.FoldingProjection`): a document whose position is at or
past the event's already counts it and is left as it is.

Keys (names and dimension values are length-prefixed: no one's prefix is the start of another's):

    kpi.definitions       {name}
    kpi.rollups           {len}:{name}|{bucket}|{dimension}|{len}:{value}|{start}
    kpi.dimension_values  {len}:{name}|{dimension}|{value}

`start` is the bucket's UTC start, fixed width (`2026-01-31T10:00:00Z`), so key order is time order
and a series is one range read.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

import msgspec

from domain import sketch
from domain.audit import part, time_text
from domain.errors import InvalidRequest, KpiRangeInvalid, KpiRangeTooLarge, KpiTimeOutOfRange
from domain.events import Event, EventId, NewEvent
from domain.identifiers import IDENTIFIER_PATTERN, METRIC_NAME_PATTERN, NAME_PATTERN, UNIT_PATTERN, check
from domain.partition import Partition
from domain.views import Upsert, ViewDoc, ViewOp

DEFINED: Final = "kpi.defined"
RECORDED: Final = "kpi.value_recorded"
DEFINITIONS: Final = "kpi.definitions"
ROLLUPS: Final = "kpi.rollups"
DIMENSION_VALUES: Final = "kpi.dimension_values"

Aggregation = Literal["sum", "count", "min", "max", "last", "p50", "p95"]
Bucket = Literal["minute", "hour", "day"]
Dimension = Literal["none", "app", "surface", "run"]
BUCKET_SECONDS: Final[dict[str, int]] = {"minute": 60, "hour": 3600, "day": 86400}
_START_WIDTH: Final = {"minute": 16, "hour": 13, "day": 10}  # of the time text the bucket keeps
_START_PAD: Final = {"minute": ":00Z", "hour": ":00:00Z", "day": "T00:00:00Z"}
_DIMENSION_PATTERNS: Final = {"app": IDENTIFIER_PATTERN, "surface": IDENTIFIER_PATTERN, "run": NAME_PATTERN}

MAX_FUTURE: Final = timedelta(minutes=5)  # a client's clock may run a little ahead; not further
MAX_AGE: Final = timedelta(days=400)  # a year's comparison, and a month of late arrivals
MAX_BATCH: Final = 1000
MAX_BUCKETS: Final = 10_000  # a series' points at most: a week of minutes, a year of hours
MAX_SERIES: Final = 100  # dimension values answered at once, without `value`
DEFAULT_BUCKETS: Final = 60  # a series without `from` covers the 60 buckets before `to`
MAX_MAGNITUDE: Final = 1e15  # sums of a million such values stay far from float overflow
_IDS: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:spine:kpi:value")

KpiName = Annotated[
    str, msgspec.Meta(pattern=METRIC_NAME_PATTERN, description="a KPI name: checkout.conversion")
]
Unit = Annotated[str, msgspec.Meta(pattern=UNIT_PATTERN, description="what a value counts: ms, usd, %")]
Description = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Number = Annotated[float, msgspec.Meta(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
RunId = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]


class Definition(msgspec.Struct, frozen=True, kw_only=True):
    """What a KPI measures and how its buckets answer `value`."""

    unit: Unit
    aggregation: Aggregation
    description: Description | None = None


class Value(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One value: `at` defaults to the server's clock; `id` makes a retry record nothing twice."""

    value: Number
    at: datetime | None = None
    run_id: RunId | None = None
    id: EventId | None = None


class Defined(msgspec.Struct, frozen=True, kw_only=True):
    """The data of `kpi.defined` as stored: read back without the rules of `Definition`."""

    name: str
    unit: str
    aggregation: str
    description: str | None = None
    defined_by: str | None = None


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """The data of `kpi.value_recorded` as stored (lenient, as `Defined`)."""

    name: str
    value: float
    at: str
    run_id: str | None = None
    client_id: str | None = None


def definition_stream(name: str) -> str:
    return f"kpi:def:{name}"


def values_stream(name: str) -> str:
    return f"kpi:values:{name}"


def defined_event(name: str, definition: Definition, user_id: str | None) -> NewEvent:
    data = Defined(name=name, defined_by=user_id, **msgspec.structs.asdict(definition))
    return NewEvent(type=DEFINED, data=msgspec.to_builtins(data))


def value_id(partition: Partition, name: str, client_id: str) -> str:
    """The event id of a value the client named: the same (partition, KPI, id), the same event."""
    return str(uuid.uuid5(_IDS, f"{partition.key}/{name}/{client_id}"))


def recorded_event(name: str, value: Value, at: datetime, *, partition: Partition, new_id: str) -> NewEvent:
    """The event of one value as of `at` (checked by `check_time`); `new_id` names it when the
    client sent no id."""
    recorded = Recorded(
        name=name, value=value.value, at=time_text(at), run_id=value.run_id, client_id=value.id
    )
    chosen = new_id if value.id is None else value_id(partition, name, value.id)
    return NewEvent(type=RECORDED, data=msgspec.to_builtins(recorded), id=chosen)


def check_time(at: datetime, now: datetime, field: str) -> datetime:
    """`at` in UTC (a time without an offset is UTC), if it is no more than `MAX_FUTURE` ahead of
    `now` and no more than `MAX_AGE` behind; `KpiTimeOutOfRange` otherwise."""
    aware = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    earliest, latest = now - MAX_AGE, now + MAX_FUTURE
    # compared before converting: year 1 at +05:00 has no UTC time (OverflowError), and is refused
    if not earliest <= aware <= latest:
        raise KpiTimeOutOfRange(field, aware.isoformat(), time_text(earliest), time_text(latest))
    return aware.astimezone(UTC)


# Keys


def bucket_start(bucket: str, at: str) -> str:
    """The UTC start of the bucket holding the fixed-width time text `at`."""
    return at[: _START_WIDTH[bucket]] + _START_PAD[bucket]


def series_prefix(name: str, bucket: str, dimension: str, value: str | None) -> str:
    return f"{part(name)}{bucket}|{dimension}|{part(value or '')}"


def rollup_key(name: str, bucket: str, dimension: str, value: str | None, start: str) -> str:
    return series_prefix(name, bucket, dimension, value) + start


def values_prefix(name: str, dimension: str) -> str:
    return f"{part(name)}{dimension}|"


def check_dimension_value(dimension: str, value: str) -> str:
    """A `value=` of a dimension, by the pattern of that dimension's ids (422 otherwise)."""
    return check("value", value, _DIMENSION_PATTERNS[dimension])


# The projection


def _dimensions(event: Event, recorded: Recorded) -> list[tuple[str, str | None]]:
    """The (dimension, value) a value counts in: always the total, then each attribution it has."""
    meta = event.meta
    found: list[tuple[str, str | None]] = [("none", None)]
    for dimension, value in (("app", meta.app_id), ("surface", meta.surface_id), ("run", recorded.run_id)):
        if value:
            found.append((dimension, value))
    return found


def _rollups(event: Event, recorded: Recorded) -> list[tuple[str, str, str, str | None]]:
    """(key, bucket, dimension, dimension value) of every rollup a value counts in."""
    return [
        (rollup_key(recorded.name, bucket, dimension, value, bucket_start(bucket, recorded.at)), bucket, dimension, value)
        for bucket in BUCKET_SECONDS
        for dimension, value in _dimensions(event, recorded)
    ]  # fmt: skip


def added(data: dict[str, Any] | None, recorded: Recorded, position: int) -> dict[str, Any]:
    """A rollup's figures with one more value (`data` None: the bucket's first)."""
    value = recorded.value
    if data is None:
        return {"count": 1, "sum": value, "min": value, "max": value, "last": value,
                "last_at": recorded.at, "last_position": position, "sketch": sketch.add(sketch.empty(), value)}  # fmt: skip
    later = (recorded.at, position) > (data["last_at"], data["last_position"])
    return {
        "count": data["count"] + 1,
        "sum": data["sum"] + value,
        "min": min(data["min"], value),
        "max": max(data["max"], value),
        "last": value if later else data["last"],
        "last_at": recorded.at if later else data["last_at"],
        "last_position": position if later else data["last_position"],
        "sketch": sketch.add(data["sketch"], value),
    }


class KpisProjection:
    """Definitions as documents; each value folded into its rollups, and its dimension values indexed."""

    name = "kpis"
    handles = frozenset({DEFINED, RECORDED})
    collections = frozenset({DEFINITIONS, ROLLUPS, DIMENSION_VALUES})
    version = 1

    def reads(self, event: Event) -> list[tuple[str, str]]:
        if event.type != RECORDED:
            return []
        recorded = msgspec.convert(event.data, Recorded)
        docs = [(ROLLUPS, key) for key, *_ in _rollups(event, recorded)]
        docs += [
            (DIMENSION_VALUES, values_prefix(recorded.name, d) + v)
            for d, v in _dimensions(event, recorded)
            if v
        ]
        return docs

    def fold(self, event: Event, docs: Mapping[tuple[str, str], ViewDoc | None]) -> list[ViewOp]:
        position = event.position
        if event.type == DEFINED:
            defined = msgspec.convert(event.data, Defined)
            data = {
                "name": defined.name,
                "unit": defined.unit,
                "aggregation": defined.aggregation,
                "description": defined.description,
                "version": event.version,
                "position": position,
                "updated_at": msgspec.to_builtins(event.recorded_at),
                "updated_by": defined.defined_by,
            }
            return [Upsert(collection=DEFINITIONS, key=defined.name, data=data, position=position)]
        recorded = msgspec.convert(event.data, Recorded)
        if not math.isfinite(recorded.value):
            raise ValueError("a KPI value must be finite")  # stored around the route: skipped
        ops: list[ViewOp] = []
        for key, bucket, dimension, value in _rollups(event, recorded):
            doc = docs.get((ROLLUPS, key))
            if doc is not None and doc.position >= position:
                continue  # it counts this event already
            figures = added(None if doc is None else doc.data, recorded, position)
            data = {"bucket": bucket, "dimension": dimension, "dimension_value": value,
                    "start": bucket_start(bucket, recorded.at), **figures, "position": position}  # fmt: skip
            ops.append(Upsert(collection=ROLLUPS, key=key, data=data, position=position))
        for dimension, seen in _dimensions(event, recorded):
            key = values_prefix(recorded.name, dimension) + (seen or "")
            if seen and docs.get((DIMENSION_VALUES, key)) is None:
                index = {"dimension": dimension, "value": seen, "position": position}
                ops.append(Upsert(collection=DIMENSION_VALUES, key=key, data=index, position=position))
        return ops

    def apply(self, event: Event) -> list[ViewOp]:
        """The event's ops on a view that holds nothing yet (the runtime folds instead)."""
        return self.fold(event, {})


# Reading a series


class Point(msgspec.Struct, frozen=True, kw_only=True):
    """One bucket: its figures, and `value`, the KPI's aggregation of them."""

    start: str
    count: int
    sum: float
    min: float
    max: float
    last: float
    p50: float | None
    p95: float | None
    value: float | None


class SeriesQuery(msgspec.Struct, frozen=True, kw_only=True):
    """A validated series read: buckets whose start is in [start, end)."""

    bucket: str
    start: str  # the first bucket's start
    end: str  # exclusive, in whole seconds (bucket starts are)
    dimension: str
    value: str | None


def query_series(
    bucket: str, start: str | None, end: str | None, dimension: str, value: str | None, now: datetime
) -> SeriesQuery:
    """`from` and `to` are ISO 8601 times (without an offset: UTC); `to` defaults to now and `from`
    to `DEFAULT_BUCKETS` buckets before it; `from` is taken back to its bucket's start. Raises
    `InvalidRequest` for a time that does not parse, `KpiRangeInvalid` for an empty or
    unrepresentable range and `KpiRangeTooLarge` beyond `MAX_BUCKETS` buckets."""
    size = timedelta(seconds=BUCKET_SECONDS[bucket])
    if value is not None:
        if dimension == "none":
            raise InvalidRequest("value= picks one value of a dimension: send dimension=app, surface or run")
        check_dimension_value(dimension, value)
    given_end, given_start = _time(end, "to"), _time(start, "from")
    try:
        last = given_end or now
        first = given_start or last - size * DEFAULT_BUCKETS
        first_text = bucket_start(bucket, time_text(first))
        aligned = datetime.fromisoformat(first_text)
        end_text = time_text(last.replace(microsecond=0) + timedelta(seconds=1 if last.microsecond else 0))
    except (OverflowError, ValueError) as exc:
        raise KpiRangeInvalid("from and to must be times between the years 1 and 9999") from exc
    if first >= last:
        raise KpiRangeInvalid(f"from ({time_text(first)}) must come before to ({time_text(last)})")
    buckets = math.ceil((last - aligned) / size)
    if buckets > MAX_BUCKETS:
        raise KpiRangeTooLarge(buckets, MAX_BUCKETS, bucket)
    return SeriesQuery(
        bucket=bucket, start=first_text, end=end_text[:19] + "Z", dimension=dimension, value=value
    )


def _time(raw: str | None, name: str) -> datetime | None:
    """A query's time in UTC (without an offset it is UTC); None when not given."""
    if raw is None or not raw.strip():
        return None
    try:
        at = datetime.fromisoformat(raw.strip())
    except ValueError as exc:
        raise InvalidRequest(
            f"{name} must be an ISO 8601 time such as 2026-01-31T12:00:00Z, got {raw[:40]!r}"
        ) from exc
    try:
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except OverflowError as exc:
        raise KpiRangeInvalid(f"{name} must be a time between the years 1 and 9999") from exc


def point_of(data: dict[str, Any], aggregation: str) -> Point:
    """A rollup document as a point; `value` is the figure `aggregation` names. Quantiles are
    kept within [min, max]: the exact ones are, so this only brings an estimate closer."""
    low, high = data["min"], data["max"]
    figures = {
        "count": data["count"], "sum": data["sum"], "min": low, "max": high, "last": data["last"],
        **{name: _within(sketch.quantile(data["sketch"], q), low, high) for name, q in (("p50", 0.5), ("p95", 0.95))},
    }  # fmt: skip
    return Point(start=data["start"], value=figures.get(aggregation), **figures)


def _within(estimate: float | None, low: float, high: float) -> float | None:
    return None if estimate is None else min(max(estimate, low), high)
