"""View snapshots over the real memory and SQLite stores: taken while the view keeps moving, they
seed rebuilds that equal the incrementally built view; a stale or incomplete one is ignored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from app.usecases import kpis
from domain.events import Event
from domain.kpis import Value
from domain.views import SNAPSHOT_META, SNAPSHOT_META_KEY, Delete, Upsert, ViewDoc, ViewOp, snapshot_space
from projections.catalog import VIEWS
from projections.runtime import Rebuild, Runner, UndeclaredCollection, project
from projections.snapshots import TakeSnapshot, stored_snapshot
from tests.contract.test_event_spine import P
from tests.projections import test_folding
from tests.projections.test_runtime import (
    GatedSpine,
    KeyValue,
    ReadRecorder,
    Stores,
    churn,
    dump,
    model,
    stores,
    view_of,
    write,
)

__all__ = ["stores"]  # the fixture

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


class MovingDuringCopy:
    """The real view store; the first `list` of the snapshot's copy first runs `moving` (more
    events appended and projected), so the copy sees documents newer than the snapshot's position.
    A pass-through with a hook, not a stand-in."""

    def __init__(self, inner: Any, moving: Callable[[], Awaitable[None]]) -> None:
        self.inner = inner
        self.moving: Callable[[], Awaitable[None]] | None = moving

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def list(self, space: str, collection: str, **kwargs: Any) -> list[ViewDoc]:
        if self.moving is not None and not space.endswith("/snapshot"):
            moving, self.moving = self.moving, None
            await moving()
        docs: list[ViewDoc] = await self.inner.list(space, collection, **kwargs)
        return docs


async def take(runner: Runner) -> TakeSnapshot:
    taking = TakeSnapshot(runner, now=NOW)
    await taking.run()
    assert (taking.state, taking.error) == ("taken", None)
    return taking


async def test_a_rebuild_from_a_snapshot_taken_while_events_arrive_equals_the_incremental_view(
    stores: Stores,
) -> None:
    history = await churn(stores.spine, 600)
    runner: Runner

    async def moving() -> None:  # while the copy runs, the view goes on
        history.extend(await churn(stores.spine, 300))
        await runner.catch_up()

    views = MovingDuringCopy(stores.views, moving)
    runner = Runner(KeyValue(), P, stores.spine, views, stores.notifier)  # type: ignore[arg-type]
    position = await runner.catch_up()
    taking = await take(runner)
    assert taking.meta is not None
    assert (taking.meta.position, taking.meta.taken_at, taking.meta.projection_version) == (position, NOW, 1)
    copied = await dump(stores.views, snapshot_space(P.key, "kv"), {"kv"})
    assert max(at for at, _ in copied.values()) > position  # some documents are newer than C
    assert taking.meta.documents == len(copied)

    history.extend(await churn(stores.spine, 250))
    await runner.catch_up()
    incremental = await view_of(runner)
    recorder = ReadRecorder(stores.spine)
    runner.spine = recorder  # type: ignore[assignment]  # the rebuild reads through the runner's spine
    rebuild = Rebuild(runner, grace_seconds=0)
    await rebuild.run()
    assert (rebuild.state, rebuild.source, rebuild.snapshot_position) == ("swapped", "snapshot", position)
    assert recorder.cursors[0] == position  # never from 0
    assert await view_of(runner) == incremental == model(history)


async def more_values(stores: Stores, tag: str, count: int = 200) -> list[float]:
    """`count` more values of the KPI `test_folding.history` defined, at the same hours: every
    rollup moves."""
    sent = []
    for n in range(count):
        value = Value(value=n % 13 - 2.5, run_id=f"run-{n % 3}", id=f"{tag}{n}")
        at = test_folding.NOW - timedelta(minutes=7 * (n % 40))
        await kpis.record(stores.spine, test_folding.context(n), "latency", [value], [at])
        sent.append(value.value)
    return sent


async def test_a_folding_view_rebuilt_from_a_snapshot_counts_each_value_once(stores: Stores) -> None:
    sent = await test_folding.history(stores)
    projection = VIEWS["kpis"].projection
    runner: Runner

    async def moving() -> None:
        sent.extend(await more_values(stores, "during"))
        await runner.catch_up()

    views = MovingDuringCopy(stores.views, moving)
    runner = Runner(projection, P, stores.spine, views, stores.notifier)  # type: ignore[arg-type]
    await runner.catch_up()
    taking = await take(runner)
    copied = await dump(stores.views, snapshot_space(P.key, "kpis"), test_folding.COLLECTIONS)
    assert taking.meta is not None
    assert max(at for at, _ in copied.values()) > taking.meta.position  # rollups newer than C
    sent.extend(await more_values(stores, "after"))
    await runner.catch_up()
    incremental = await dump(stores.views, runner.space, test_folding.COLLECTIONS)
    rebuild = Rebuild(runner, grace_seconds=0)
    await rebuild.run()
    assert (rebuild.state, rebuild.source) == ("swapped", "snapshot")
    assert await dump(stores.views, runner.space, test_folding.COLLECTIONS) == incremental
    assert await test_folding.total(stores.views, runner.space) == (len(sent), sum(sent))


class KeyValueV2(KeyValue):
    version = 2  # what `apply` makes changed: snapshots of version 1 mean nothing to it


async def spoil_nothing(stores: Stores) -> None:
    """The snapshot stays as it was taken."""


async def spoil_meta(stores: Stores) -> None:
    """The meta document is gone, as when a take stopped before writing it."""
    meta = Delete(collection=SNAPSHOT_META, key=SNAPSHOT_META_KEY, position=10**9)
    await stores.views.apply(snapshot_space(P.key, "kv"), [meta], checkpoint=0)


@pytest.mark.parametrize(
    ("spoil", "projection", "from_", "source"),
    [
        (spoil_nothing, KeyValue(), "snapshot", "snapshot"),
        (spoil_nothing, KeyValueV2(), "snapshot", "start"),  # a stale version
        (spoil_meta, KeyValue(), "snapshot", "start"),  # incomplete
        (spoil_nothing, KeyValue(), "start", "start"),  # the caller asked for the start
    ],
    ids=["valid", "stale-version", "missing-meta", "from-start"],
)
async def test_a_rebuild_starts_from_a_snapshot_only_when_one_is_valid_and_wanted(
    stores: Stores, spoil: Any, projection: KeyValue, from_: Any, source: str
) -> None:
    history = await churn(stores.spine, 400)
    await take(Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier))
    await spoil(stores)
    history.extend(await churn(stores.spine, 100))
    recorder = ReadRecorder(stores.spine)
    runner = Runner(projection, P, recorder, stores.views, stores.notifier)  # type: ignore[arg-type]
    await runner.catch_up()
    valid = await stored_snapshot(stores.views, P.key, projection)
    recorder.cursors.clear()
    rebuild = Rebuild(runner, grace_seconds=0, from_=from_)
    await rebuild.run()
    assert (rebuild.state, rebuild.source) == ("swapped", source)
    assert recorder.cursors[0] == (valid.position if source == "snapshot" and valid else 0)
    assert await view_of(runner) == model(history)


async def test_a_rebuild_after_the_log_moved_starts_from_0_and_drops_the_snapshot(stores: Stores) -> None:
    await churn(stores.spine, 200)
    runner = Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier)
    await runner.catch_up()
    await take(runner)
    rebuild = Rebuild(runner, spine=ReadRecorder(stores.spine), grace_seconds=0)  # type: ignore[arg-type]
    await rebuild.run()
    assert (rebuild.state, rebuild.source) == ("swapped", "start")
    assert await stored_snapshot(stores.views, P.key, KeyValue()) is None


async def test_a_second_snapshot_replaces_the_first(stores: Stores) -> None:
    history = await churn(stores.spine, 200)
    runner = Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier)
    await runner.catch_up()
    await take(runner)
    history.extend(await churn(stores.spine, 50))
    head = await runner.catch_up()
    second = await take(runner)
    assert second.meta is not None
    assert second.meta.position == head
    copied = await dump(stores.views, snapshot_space(P.key, "kv"), {"kv"})
    assert {key: data["value"] for (_, key), (_, data) in copied.items()} == model(history)


class Undeclared(KeyValue):
    collections = frozenset({"elsewhere"})


async def test_an_op_on_an_undeclared_collection_stops_the_view_loudly(stores: Stores) -> None:
    await write(stores.spine, ("kv.set", {"key": "a", "value": 1}))
    with pytest.raises(UndeclaredCollection, match="'kv'"):
        await project(Undeclared(), P, stores.spine, stores.views, f"{P.key}/kv/0", 0)


class MetaWriter(KeyValue):
    collections = frozenset({"kv", SNAPSHOT_META})

    def apply(self, event: Event) -> list[ViewOp]:
        return [Upsert(collection=SNAPSHOT_META, key="meta", data={}, position=event.position)]


async def test_no_projection_may_write_the_snapshot_meta(stores: Stores) -> None:
    await write(stores.spine, ("kv.set", {"key": "a", "value": 1}))
    with pytest.raises(UndeclaredCollection):
        await project(MetaWriter(), P, stores.spine, stores.views, f"{P.key}/kv/0", 0)
    assert all(SNAPSHOT_META not in view.projection.collections for view in VIEWS.values())


async def test_an_interrupted_rebuild_from_a_snapshot_resumes_where_it_stopped(stores: Stores) -> None:
    history = await churn(stores.spine, 300)
    runner = Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier)
    position = await runner.catch_up()
    await take(runner)
    history.extend(await churn(stores.spine, 1200))
    await runner.catch_up()
    gated = GatedSpine(stores.spine, gate_at=position + 500)
    runner.spine = gated  # type: ignore[assignment]  # the rebuild reads through the runner's spine
    async with anyio.create_task_group() as tg:
        tg.start_soon(Rebuild(runner, grace_seconds=0).run)
        await gated.waiting.wait()  # the copy and one page after the snapshot are written
        tg.cancel_scope.cancel()  # the process stops mid-rebuild

    recorder = ReadRecorder(stores.spine)
    restarted = Runner(KeyValue(), P, recorder, stores.views, stores.notifier)  # type: ignore[arg-type]
    await restarted.catch_up()
    recorder.cursors.clear()
    resumed = Rebuild(restarted, grace_seconds=0)
    await resumed.run()
    assert recorder.cursors[0] == position + 500  # neither from 0 nor from the snapshot again
    assert (resumed.state, resumed.source, resumed.snapshot_position) == ("swapped", "snapshot", position)
    assert await view_of(restarted) == model(history)
