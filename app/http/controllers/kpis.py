"""`/v1/kpis`: KPI definitions (versioned, ETag = version), values, and series of their rollups.

Values are attributed from the request's context (tenant, project, app when `X-App-Id` is sent,
surface, user); the body names only the value, its time, a run and an idempotency id. Series are
read from the rollups the `kpis` projection keeps (never computed over raw values at read time).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.params import JSONBody, Parameter, PathParameter, QueryParameter

from app.http.preconditions import IfMatch, precondition
from app.http.reads import MinPosition, caught_up, served
from app.http.services import CallDep
from app.usecases import kpis
from domain.errors import InvalidCursor, KpiNotFound
from domain.events import AppendResult, EventId, ExpectedVersion
from domain.identifiers import METRIC_NAME_PATTERN, matches
from domain.kpis import (
    DEFINITIONS,
    MAX_BATCH,
    Aggregation,
    Bucket,
    Definition,
    Dimension,
    Point,
    RunId,
    Value,
    query_series,
)
from domain.kpis import Description as DescriptionText
from domain.kpis import Number as NumberValue
from domain.kpis import Unit as UnitText
from projections.catalog import VIEWS
from projections.runtime import Runner

VIEW = VIEWS["kpis"]
MAX_PAGE = 1000
NameParam = Annotated[
    str, PathParameter(description="the KPI's name: checkout.conversion", pattern=METRIC_NAME_PATTERN)
]
After = Annotated[str | None, Parameter(description="page cursor: KPIs named after this one")]
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="page size")]
BucketParam = Annotated[Bucket, Parameter(description="the bucket size: minute, hour or day (UTC)")]
DimensionParam = Annotated[
    Dimension, Parameter(description="none (the total), app, surface or run: one series per value")
]
ValueParam = Annotated[
    str | None, Parameter(description="one value of the dimension (an app id, a surface id, a run id)")
]
TimeFrom = Annotated[
    str | None,
    QueryParameter(
        name="from",
        description="ISO 8601, inclusive (from its bucket's start); default: 60 buckets before to",
    ),
]
TimeTo = Annotated[str | None, QueryParameter(name="to", description="ISO 8601, exclusive; default: now")]


class DefinitionBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A KPI's whole definition (a write replaces it). Unknown fields are refused, never dropped."""

    unit: UnitText
    aggregation: Aggregation
    description: DescriptionText | None = None
    expected_version: ExpectedVersion | None = None

    def definition(self) -> Definition:
        return Definition(unit=self.unit, aggregation=self.aggregation, description=self.description)


class ValuesBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One value (`value`, `at`?, `run_id`?, `id`?) or a batch (`values`: up to 1000 of them),
    validated together: one bad value refuses all."""

    value: NumberValue | None = None
    at: datetime | None = None
    run_id: RunId | None = None
    id: EventId | None = None
    values: Annotated[list[Value], msgspec.Meta(min_length=1, max_length=MAX_BATCH)] | None = None

    def __post_init__(self) -> None:
        single = any(field is not None for field in (self.value, self.at, self.run_id, self.id))
        if self.values is not None and single:
            raise ValueError("send either one value (value, at, run_id, id) or a batch (values), not both")
        if self.values is None and self.value is None:
            raise ValueError("value is required (or a batch: values)")

    def each(self) -> list[Value]:
        if self.values is not None:
            return self.values
        assert self.value is not None
        return [Value(value=self.value, at=self.at, run_id=self.run_id, id=self.id)]


class KpiDefinition(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    unit: str
    aggregation: str
    description: str | None
    version: int
    position: int
    updated_at: str
    updated_by: str | None


class KpiList(msgspec.Struct, frozen=True, kw_only=True):
    """The project's KPIs by name; `next` (null on the last page) is the cursor."""

    kpis: list[KpiDefinition]
    next: str | None


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """Each value's event id (derived from a client `id`: a retry answers the same), in the order
    sent; `position` is the highest of their positions."""

    name: str
    ids: list[str]
    position: int


class Series(msgspec.Struct, frozen=True, kw_only=True):
    """One dimension value's buckets that hold values, oldest first (null: the KPI's total)."""

    dimension_value: str | None
    points: list[Point]


class SeriesAnswer(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    unit: str
    aggregation: str
    bucket: str
    dimension: str
    start: str  # the first bucket's start: `from` taken back to its bucket
    end: str
    series: list[Series]


class KpisController(Controller):
    path = "/v1/kpis"
    tags = ["kpis"]

    @put(
        "/{name:str}", summary="Define a KPI (or replace its definition); If-Match makes it a compare-and-set"
    )
    async def define(
        self, name: NameParam, data: JSONBody[DefinitionBody], call: CallDep, if_match: IfMatch = None
    ) -> Response[dict[str, Any]]:
        wanted = precondition(data.expected_version, if_match)
        await call.view(VIEW)  # 503 before appending
        result = await kpis.define(await call.spine(), call.ctx, name, data.definition(), wanted)
        return _written({"name": name, "version": result.stream_version}, result)

    @get("/{name:str}", summary="A KPI's definition, with its version as ETag; 404 when not defined")
    async def read(
        self, name: NameParam, call: CallDep, min_position: MinPosition = None
    ) -> Response[KpiDefinition]:
        runner = await caught_up(call, VIEW, min_position)
        definition = served(await _definition(runner, name))
        return Response(definition, headers={"ETag": f'"{definition.version}"'})

    @get("/", summary="The project's KPI definitions, by name, by cursor")
    async def list_kpis(
        self, call: CallDep, after: After = None, limit: Limit = 100, min_position: MinPosition = None
    ) -> Response[KpiList]:
        if after is not None and not matches(after, METRIC_NAME_PATTERN):
            raise InvalidCursor(f"after must be a KPI name a listing answered as next, got {after[:40]!r}")
        runner = await caught_up(call, VIEW, min_position)
        docs = await runner.list(DEFINITIONS, after=after or "", limit=limit + 1)
        found = [msgspec.convert(doc.data, KpiDefinition) for doc in docs[:limit]]
        return Response(KpiList(kpis=found, next=found[-1].name if len(docs) > limit else None))

    @post("/{name:str}/values", status_code=201, summary="Record a value, or a batch of up to 1000")
    async def record(self, name: NameParam, data: JSONBody[ValuesBody], call: CallDep) -> Response[Recorded]:
        values = data.each()
        times = kpis.check_values(values, call.services.clock(), batch=data.values is not None)
        await call.view(VIEW)  # 503 before appending
        recorded = await kpis.record(await call.spine(), call.ctx, name, values, times)
        answer = Recorded(name=name, ids=recorded.ids, position=recorded.position)
        return Response(answer, status_code=201, headers={"X-Spine-Position": str(recorded.position)})

    @get("/{name:str}/series", summary="A KPI's rollups by UTC bucket: the total, or per app, surface or run")
    async def series(
        self,
        name: NameParam,
        call: CallDep,
        bucket: BucketParam = "hour",
        start: TimeFrom = None,
        end: TimeTo = None,
        dimension: DimensionParam = "none",
        value: ValueParam = None,
        min_position: MinPosition = None,
    ) -> Response[SeriesAnswer]:
        query = query_series(bucket, start, end, dimension, value, call.services.clock())
        runner = await caught_up(call, VIEW, min_position)
        definition = await _definition(runner, name)
        found = await kpis.series(runner, name, query, definition.aggregation)
        answer = SeriesAnswer(
            name=name,
            unit=definition.unit,
            aggregation=definition.aggregation,
            bucket=bucket,
            dimension=dimension,
            start=query.start,
            end=query.end,
            series=[Series(dimension_value=key, points=points) for key, points in found],
        )
        return Response(answer)


async def _definition(runner: Runner, name: str) -> KpiDefinition:
    doc = await runner.get(DEFINITIONS, name)
    if doc is None:
        raise KpiNotFound(name)
    return msgspec.convert(doc.data, KpiDefinition)


def _written(body: dict[str, Any], result: AppendResult) -> Response[dict[str, Any]]:
    headers = {"X-Spine-Position": str(result.last_position), "ETag": f'"{result.stream_version}"'}
    return Response({**body, "position": result.last_position}, headers=headers)
