"""A folding projection (the KPI rollups) under the runtime, over the real memory and SQLite stores:
each value counted once however its events are delivered again — a run from an older checkpoint,
a batch written in part before a failure, two processes projecting one space at once — and a
view built in batches that fit equal to one built unsplit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from app.usecases import kpis
from domain.context import RequestContext
from domain.errors import BackendUnavailable
from domain.kpis import DIMENSION_VALUES, ROLLUPS, Definition, KpisProjection, Value, rollup_key
from domain.ports import ViewStore
from domain.views import ViewOp
from projections.runtime import PAGE, Runner, project
from tests.contract.test_event_spine import P
from tests.projections.test_apply_size import bounded
from tests.projections.test_runtime import Stores, dump, stores

__all__ = ["bounded", "stores"]  # the fixtures

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
COLLECTIONS = ("kpi.definitions", ROLLUPS, DIMENSION_VALUES)
VALUES = PAGE + 150  # more than a page: the fold goes on from the documents the first page left


def context(n: int) -> RequestContext:
    return RequestContext(
        tenant_id="t1", env="dev", project_id="p1", mode="lab", user_id="u1", surface_id="web",
        app_id=("app1", "app2", None)[n % 3],
    )  # fmt: skip


async def history(stores: Stores) -> list[float]:
    """A KPI's definition and `VALUES` values (some retried), over apps, runs and hours."""
    ctx = context(0)
    await kpis.define(stores.spine, ctx, "latency", Definition(unit="ms", aggregation="p95"), None)
    sent = []
    for n in range(VALUES):
        value = Value(value=(n % 17) * 1.25 - 5, run_id=f"run-{n % 4}", id=f"v{n}")
        times = [NOW - timedelta(minutes=7 * (n % 40))]
        await kpis.record(stores.spine, context(n), "latency", [value], times)
        if n % 9 == 0:  # a retry: stored once
            await kpis.record(stores.spine, context(n), "latency", [value], times)
        sent.append(value.value)
    return sent


async def total(views: ViewStore, space: str) -> tuple[int, float]:
    day = rollup_key("latency", "day", "none", None, "2026-03-10T00:00:00Z")
    before = rollup_key("latency", "day", "none", None, "2026-03-09T00:00:00Z")
    docs = [await views.get(space, ROLLUPS, key) for key in (before, day)]
    return sum(d.data["count"] for d in docs if d), sum(d.data["sum"] for d in docs if d)


async def test_values_delivered_again_are_counted_once(stores: Stores) -> None:
    sent = await history(stores)
    projection = KpisProjection()
    head = await stores.spine.head(P)
    once = f"{P.key}/kpis/once"
    assert await project(projection, P, stores.spine, stores.views, once, 0) == head
    assert await total(stores.views, once) == (VALUES, sum(sent))

    runner = Runner(projection, P, stores.spine, stores.views, stores.notifier)
    assert await runner.catch_up() == head
    await project(projection, P, stores.spine, stores.views, runner.space, 0)  # from an older checkpoint
    await project(projection, P, stores.spine, stores.views, runner.space, head // 2)
    assert await dump(stores.views, runner.space, COLLECTIONS) == await dump(stores.views, once, COLLECTIONS)
    assert await total(stores.views, runner.space) == (VALUES, sum(sent))


class PartWritten:
    """A store whose `fail_at`-th apply writes the first half of its ops, leaves the checkpoint, and
    fails (as a Cosmos batch, which is not atomic, or an oversized apply may)."""

    def __init__(self, inner: ViewStore, fail_at: int) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def apply(self, space: str, ops: Sequence[ViewOp], checkpoint: int) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            half = list(ops)[: len(ops) // 2]
            await self.inner.apply(space, half, checkpoint=await self.inner.checkpoint(space))
            raise BackendUnavailable("kpi_store", "the batch was written in part")
        await self.inner.apply(space, ops, checkpoint)


@pytest.mark.parametrize(("split", "fail_at"), [(False, 1), (False, 2), (True, 2), (True, 40)])
async def test_a_batch_written_in_part_is_completed_and_counted_once(
    stores: Stores, bounded: Any, split: bool, fail_at: int
) -> None:
    """Unsplit, the failed batch is a whole page, read again as it was. Split (a store that holds
    about one event per apply), the page read again runs past the part written: the events after
    it fold onto documents that already count some of the page, and must not count them again."""
    sent = await history(stores)
    projection, head = KpisProjection(), await stores.spine.head(P)
    once = f"{P.key}/kpis/once"
    await project(projection, P, stores.spine, stores.views, once, 0)
    views = bounded if split else stores.views
    space = f"{P.key}/kpis/flaky"
    with pytest.raises(BackendUnavailable):
        await project(projection, P, stores.spine, PartWritten(views, fail_at), space, 0)  # type: ignore[arg-type]
    checkpoint = await views.checkpoint(space)
    assert checkpoint < head
    part = await dump(views, space, COLLECTIONS)
    assert part
    assert part != await dump(stores.views, once, COLLECTIONS)
    assert await project(projection, P, stores.spine, views, space, checkpoint) == head
    assert await dump(views, space, COLLECTIONS) == await dump(stores.views, once, COLLECTIONS)
    assert await total(views, space) == (VALUES, sum(sent))


async def test_two_processes_folding_one_space_count_each_value_once(stores: Stores) -> None:
    sent = await history(stores)
    projection = KpisProjection()
    once, shared = f"{P.key}/kpis/once", f"{P.key}/kpis/shared"
    await project(projection, P, stores.spine, stores.views, once, 0)
    async with anyio.create_task_group() as group:
        for _ in range(2):
            group.start_soon(project, projection, P, stores.spine, stores.views, shared, 0)
    assert await dump(stores.views, shared, COLLECTIONS) == await dump(stores.views, once, COLLECTIONS)
    assert await total(stores.views, shared) == (VALUES, sum(sent))


async def test_a_folded_view_built_in_batches_that_fit_equals_the_unsplit_one(
    stores: Stores, bounded: Any
) -> None:
    await history(stores)
    projection, head = KpisProjection(), await stores.spine.head(P)
    space = f"{P.key}/kpis/0"
    assert await project(projection, P, stores.spine, bounded, space, 0) == head
    assert len(bounded.applies) > 10  # cut into many applies
    assert await project(projection, P, stores.spine, stores.views, space, 0) == head
    assert await dump(bounded, space, COLLECTIONS) == await dump(stores.views, space, COLLECTIONS)
