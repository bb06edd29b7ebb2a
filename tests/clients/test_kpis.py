"""The Python client's KPI methods against a live server: each reaches its route, and each answer
decodes into the client's own types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from spine_client import SpineClient, SpineClientError, SyncSpineClient
from spine_client.types import Kpi, KpiSeries
from tests.clients.conftest import APP, USER


async def test_kpis(client: SpineClient) -> None:
    defined = await client.define_kpi("latency.ms", "ms", "max", description="checkout")
    assert (defined.name, defined.version) == ("latency.ms", 1)
    kpi = await client.get_kpi("latency.ms", min_position=defined.position)
    assert isinstance(kpi, Kpi)
    assert (kpi.unit, kpi.aggregation, kpi.description, kpi.updated_by) == ("ms", "max", "checkout", USER)
    assert [k.name for k in (await client.list_kpis(min_position=defined.position)).kpis] == ["latency.ms"]

    now = datetime.now(UTC)
    one = await client.record_kpi_value(
        "latency.ms", 120.5, at=now - timedelta(minutes=1), run_id="run-1", id="v1"
    )
    assert await client.record_kpi_value("latency.ms", 120.5, id="v1") == one  # a retry: recorded once
    batch = await client.record_kpi_values("latency.ms", [{"value": 80}, {"value": 300, "run_id": "run-2"}])
    assert len(batch.ids) == 2
    series = await client.kpi_series(
        "latency.ms", bucket="day", start=now - timedelta(days=1), end=now + timedelta(minutes=1),
        dimension="app", min_position=batch.position,
    )  # fmt: skip
    assert isinstance(series, KpiSeries)
    [of_app] = series.series
    assert of_app.dimension_value == APP
    assert (sum(p.count for p in of_app.points), max(p.max for p in of_app.points)) == (3, 300.0)
    assert [p.value for p in of_app.points] == [p.max for p in of_app.points]  # the aggregation: max
    runs = await client.kpi_series(
        "latency.ms", bucket="hour", dimension="run", value="run-2", min_position=batch.position
    )
    assert [s.dimension_value for s in runs.series] == ["run-2"]

    with pytest.raises(SpineClientError) as raised:
        await client.define_kpi("latency.ms", "ms", "sum", expected_version=5)
    assert (raised.value.status, raised.value.error_code) == (409, "kpi.version_conflict")
    with pytest.raises(SpineClientError) as missing:
        await client.record_kpi_value("nothing", 1)
    assert missing.value.error_code == "kpi.not_found"


def test_kpis_sync(sync_client: SyncSpineClient) -> None:
    defined = sync_client.define_kpi("signups", "users", "count")
    recorded = sync_client.record_kpi_value("signups", 1)
    series = sync_client.kpi_series("signups", bucket="minute", min_position=recorded.position)
    assert (defined.version, [sum(p.count for p in s.points) for s in series.series]) == (1, [1])
