"""The projection runner over real stores: catch-up, live, restart, re-delivery, rebuild."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from spine.adapters.local_notifier import LocalNotifier
from spine.adapters.memory_spine import MemorySpine
from spine.adapters.memory_views import MemoryViewStore
from spine.adapters.sqlite_spine import SQLiteSpine
from spine.adapters.sqlite_views import SQLiteViewStore
from spine.domain.append import AppendRequest
from spine.domain.events import Event, EventMeta, NewEvent, Page
from spine.domain.partition import Partition
from spine.domain.ports import EventSpine, ViewStore
from spine.domain.views import Delete, Generations, Upsert, ViewOp
from spine.projections.runtime import Rebuild, Runner
from tests.contract.test_event_spine import P

META = EventMeta(tenant_id="t1", env="dev", project_id="p1")


class KeyValue:
    """A minimal projection: `kv.set` upserts, `kv.deleted` deletes; other types are not read."""

    name = "kv"
    handles = frozenset({"kv.set", "kv.deleted"})

    def apply(self, event: Event) -> list[ViewOp]:
        key = str(event.data["key"])
        if event.type == "kv.deleted":
            return [Delete(collection="kv", key=key, position=event.position)]
        return [
            Upsert(collection="kv", key=key, data={"value": event.data["value"]}, position=event.position)
        ]


@dataclass
class Stores:
    spine: EventSpine
    views: ViewStore
    notifier: LocalNotifier
    path: Path


@pytest.fixture(params=["memory", "sqlite"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    notifier = LocalNotifier()
    async with AsyncExitStack() as stack:
        if request.param == "memory":
            yield Stores(MemorySpine(notifier), MemoryViewStore(), notifier, tmp_path)
        else:
            spine = await stack.enter_async_context(SQLiteSpine(tmp_path / "spine.db", notifier=notifier))
            views = await stack.enter_async_context(SQLiteViewStore(tmp_path / "views.db"))
            yield Stores(spine, views, notifier, tmp_path)


async def write(spine: EventSpine, *events: tuple[str, dict[str, object]]) -> int:
    request = AppendRequest(stream="s", events=[NewEvent(type=t, data=d) for t, d in events], meta=META)
    return (await spine.append(P, request)).last_position


def model(events: list[tuple[str, dict[str, object]]]) -> dict[str, object]:
    state: dict[str, object] = {}
    for type_, data in events:
        if type_ == "kv.set":
            state[str(data["key"])] = data["value"]
        elif type_ == "kv.deleted":
            state.pop(str(data["key"]), None)
    return state


async def view_of(runner: Runner) -> dict[str, object]:
    return {doc.key: doc.data["value"] for doc in await runner.list("kv", limit=10_000)}


HISTORY: list[tuple[str, dict[str, object]]] = [
    ("kv.set", {"key": "a", "value": 1}),
    ("noise", {}),
    ("kv.set", {"key": "b", "value": 2}),
    ("kv.set", {"key": "a", "value": 3}),
    ("kv.deleted", {"key": "b"}),
    ("noise", {}),
]


async def test_catch_up_builds_the_view_and_checkpoints_past_unhandled_events(stores: Stores) -> None:
    head = await write(stores.spine, *HISTORY)
    runner = Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier)
    assert await runner.catch_up() == head
    assert await view_of(runner) == model(HISTORY) == {"a": 3}
    assert await stores.views.checkpoint(runner.space) == head


async def test_a_running_projection_follows_live_appends(stores: Stores) -> None:
    runner = Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier, poll_seconds=30)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        position = await write(stores.spine, ("kv.set", {"key": "x", "value": "live"}))
        # only a notification can wake it within the wait: the poll is 30 s away
        assert await runner.wait_for(position, timeout=10)
        tg.cancel_scope.cancel()
    assert await view_of(runner) == {"x": "live"}


async def test_wait_for_a_position_never_written_times_out(stores: Stores) -> None:
    runner = Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier)
    await runner.catch_up()
    assert not await runner.wait_for(1, timeout=0.05)


class ReadRecorder:
    """A pass-through over the real spine that notes each read's cursor (a spy, not a stand-in)."""

    def __init__(self, inner: EventSpine) -> None:
        self.inner = inner
        self.cursors: list[int] = []

    async def read(
        self, partition: Partition, *, after: int = 0, limit: int = 100, stream: str | None = None,
        types: Collection[str] = (),
    ) -> Page:  # fmt: skip
        self.cursors.append(after)
        return await self.inner.read(partition, after=after, limit=limit, stream=stream, types=types)

    async def head(self, partition: Partition) -> int:
        return await self.inner.head(partition)


async def test_a_restarted_runner_continues_from_its_checkpoint(stores: Stores) -> None:
    first_head = await write(stores.spine, *HISTORY)
    await Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier).catch_up()
    await write(stores.spine, ("kv.set", {"key": "c", "value": 4}))
    recorder = ReadRecorder(stores.spine)
    restarted = Runner(KeyValue(), P, recorder, stores.views, stores.notifier)  # type: ignore[arg-type]
    await restarted.catch_up()
    assert recorder.cursors[0] == first_head  # never from 0
    assert await view_of(restarted) == {"a": 3, "c": 4}


async def test_events_delivered_again_change_nothing(stores: Stores) -> None:
    """A crash after the ops were written but before the runner knew: the next run repeats them."""
    await write(stores.spine, *HISTORY)
    runner = Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier)
    await runner.catch_up()
    page = await stores.spine.read(P, after=0, limit=100)
    ops = [op for event in page.events if event.type in KeyValue.handles for op in KeyValue().apply(event)]
    await stores.views.apply(runner.space, ops, checkpoint=0)  # all of it again
    assert await view_of(runner) == model(HISTORY)


async def churn(spine: EventSpine, count: int) -> list[tuple[str, dict[str, object]]]:
    history: list[tuple[str, dict[str, object]]] = [
        ("kv.deleted", {"key": f"k{i % 7}"}) if i % 5 == 4 else ("kv.set", {"key": f"k{i % 11}", "value": i})
        for i in range(count)
    ]
    for start in range(0, count, 100):
        await write(spine, *history[start : start + 100])
    return history


async def test_a_rebuild_swaps_in_a_new_generation_equal_to_the_incremental_view(stores: Stores) -> None:
    runner = Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier)
    history = await churn(stores.spine, 300)
    await runner.catch_up()
    incremental = await view_of(runner)
    retired = runner.space

    rebuild = Rebuild(runner, grace_seconds=0)
    await rebuild.run()
    assert (rebuild.state, rebuild.generation, runner.generation) == ("swapped", 1, 1)
    assert await view_of(runner) == incremental == model(history)
    assert await stores.views.generations(P.key, "kv") == Generations(serving=1)
    assert await stores.views.checkpoint(retired) == 0  # the retired generation is dropped
    await write(stores.spine, ("kv.set", {"key": "after", "value": "swap"}))
    await runner.catch_up()  # the live runner goes on in the new generation
    assert (await view_of(runner))["after"] == "swap"


class GatedSpine:
    """A pass-through over the real spine whose reads from `after` >= `gate_at` wait for `opened`."""

    def __init__(self, inner: EventSpine, gate_at: int) -> None:
        self.inner = inner
        self.gate_at = gate_at
        self.opened = anyio.Event()
        self.waiting = anyio.Event()

    async def read(self, partition: Partition, **kwargs: object) -> Page:
        if int(kwargs.get("after", 0)) >= self.gate_at:  # type: ignore[call-overload]
            self.waiting.set()
            await self.opened.wait()
        return await self.inner.read(partition, **kwargs)  # type: ignore[arg-type]

    async def head(self, partition: Partition) -> int:
        return await self.inner.head(partition)


async def test_reads_are_served_by_the_old_generation_until_the_swap(stores: Stores) -> None:
    history = await churn(stores.spine, 1200)
    runner = Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier)
    await runner.catch_up()
    before = await view_of(runner)
    gated = GatedSpine(stores.spine, gate_at=500)
    runner.spine = gated  # type: ignore[assignment]  # the rebuild reads through the runner's spine
    rebuild = Rebuild(runner, grace_seconds=0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(rebuild.run)
        await gated.waiting.wait()  # one page of the new generation is written, the rest is not
        assert (rebuild.state, runner.generation, rebuild.position) == ("building", 0, 500)
        assert await view_of(runner) == before  # reads still see the whole serving view
        gated.opened.set()
    assert runner.generation == 1
    assert await view_of(runner) == before == model(history)


async def test_an_interrupted_rebuild_resumes_from_its_checkpoint(stores: Stores) -> None:
    history = await churn(stores.spine, 1200)
    runner = Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier)
    await runner.catch_up()
    gated = GatedSpine(stores.spine, gate_at=500)
    runner.spine = gated  # type: ignore[assignment]
    async with anyio.create_task_group() as tg:
        tg.start_soon(Rebuild(runner, grace_seconds=0).run)
        await gated.waiting.wait()
        tg.cancel_scope.cancel()  # the process stops mid-rebuild
    assert await stores.views.generations(P.key, "kv") == Generations(serving=0, building=1)

    recorder = ReadRecorder(stores.spine)
    restarted = Runner(KeyValue(), P, recorder, stores.views, stores.notifier)  # type: ignore[arg-type]
    await restarted.catch_up()
    recorder.cursors.clear()
    resumed = Rebuild(restarted, grace_seconds=0)
    await resumed.run()
    assert recorder.cursors[0] == 500  # continued where the interrupted one stopped
    assert (resumed.state, restarted.generation) == ("swapped", 1)
    assert await view_of(restarted) == model(history)


async def test_of_two_runners_one_projects_and_the_other_follows(stores: Stores) -> None:
    """Two processes' runners on one store: one holds the lease; the other serves reads from it."""
    leader = Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier, holder="one")
    follower = Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier, holder="two")
    await write(stores.spine, *HISTORY)
    await leader.catch_up()
    await follower.catch_up()
    assert (leader.leading, follower.leading) == (True, False)
    position = await write(stores.spine, ("kv.set", {"key": "z", "value": 26}))
    async with anyio.create_task_group() as tg:
        tg.start_soon(leader.run)
        assert await follower.wait_for(position, timeout=10)
        tg.cancel_scope.cancel()
    assert await view_of(follower) == {**model(HISTORY), "z": 26}

    await Rebuild(leader, grace_seconds=0).run()  # the follower notices the new generation
    assert await follower.wait_for(position, timeout=10)
    await follower.catch_up()
    assert follower.generation == 1
    assert await view_of(follower) == {**model(HISTORY), "z": 26}


async def test_an_event_the_projection_cannot_read_is_skipped_and_the_view_goes_on(stores: Stores) -> None:
    runner = Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier)
    head = await write(stores.spine, ("kv.set", {"key": "a", "value": 1}), ("kv.set", {"no_key": True}),
                       ("kv.set", {"key": "b", "value": 2}))  # fmt: skip
    assert await runner.catch_up() == head
    assert await view_of(runner) == {"a": 1, "b": 2}
