"""The projection runner over real stores: catch-up, live, restart, re-delivery, rebuild."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from adapters.local_notifier import LocalNotifier
from adapters.memory.spine import MemorySpine
from adapters.memory.views import MemoryViewStore
from adapters.sqlite.spine import SQLiteSpine
from adapters.sqlite.views import SQLiteViewStore
from app.usecases.budget import record_usage, set_limit
from domain import audit, blackboard, memory, sessions
from domain.append import AppendRequest
from domain.budget import (
    LEDGER,
    TOTALS,
    USAGE_RECORDED,
    LimitChange,
    Usage,
    ledger_prefix,
    totals_prefix,
)
from domain.context import RequestContext
from domain.errors import BackendUnavailable, BudgetExceeded
from domain.events import Event, EventMeta, NewEvent, Page
from domain.partition import Partition
from domain.ports import EventSpine, ViewStore
from domain.views import Delete, Generations, Upsert, ViewOp
from projections.catalog import VIEWS
from projections.runtime import Rebuild, Runner, project
from tests.contract.test_event_spine import P

META = EventMeta(tenant_id="t1", env="dev", project_id="p1")


class KeyValue:
    """A minimal projection: `kv.set` upserts, `kv.deleted` deletes; other types are not read."""

    name = "kv"
    handles = frozenset({"kv.set", "kv.deleted"})
    collections = frozenset({"kv"})
    version = 1

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


class FailingViews:
    """The real store, whose applies fail `failures` times first: a backend that is down a while."""

    def __init__(self, inner: ViewStore, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def apply(self, space: str, ops: Sequence[ViewOp], checkpoint: int) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise BackendUnavailable("memory_store", "the store is down")
        await self.inner.apply(space, ops, checkpoint)


async def test_a_store_that_fails_delays_its_view_and_never_stops_the_runner(stores: Stores) -> None:
    """Runners share the app's task group: an error escaping one would stop every view and the
    control plane. A failing store costs its own view latency, and the runner retries."""
    views = FailingViews(stores.views, failures=3)
    runner = Runner(KeyValue(), P, stores.spine, views, stores.notifier, poll_seconds=0.01)  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        position = await write(stores.spine, ("kv.set", {"key": "x", "value": "late"}))
        assert await runner.wait_for(position, timeout=30)
        tg.cancel_scope.cancel()
    assert views.failures == 0
    assert await view_of(runner) == {"x": "late"}


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


class GatedViews:
    """A pass-through over the real view store whose `apply` number `gate_at` can stop before
    delegating (until `opened`) and after it (until cancelled). A spy and a gate, not a stand-in:
    every call reaches the real store."""

    def __init__(self, inner: ViewStore, *, gate_at: int, before: bool = False, after: bool = False) -> None:
        self.inner = inner
        self.gate_at = gate_at
        self.before, self.after = before, after
        self.applies = 0
        self.waiting = anyio.Event()  # stopped before delegating
        self.opened = anyio.Event()
        self.written = anyio.Event()  # delegated: the real store holds the batch

    async def apply(self, space: str, ops: Sequence[ViewOp], checkpoint: int) -> None:
        self.applies += 1
        gated = self.applies == self.gate_at
        if gated and self.before:
            self.waiting.set()
            await self.opened.wait()
        await self.inner.apply(space, ops, checkpoint)
        if gated and self.after:
            self.written.set()
            await anyio.sleep_forever()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("written", [False, True], ids=["before-the-store-wrote", "after-the-store-wrote"])
async def test_a_runner_cancelled_mid_batch_is_taken_over_from_the_stored_checkpoint(
    stores: Stores, written: bool
) -> None:
    """Cancelled while the view store's `apply` of its second page is in flight: the batch is in
    the store (ops and checkpoint) or not at all, and a new runner goes on from what is stored."""
    history = await churn(stores.spine, 1200)  # pages of 500, 500 and 200 events
    head = await stores.spine.head(P)
    gated = GatedViews(stores.views, gate_at=2, before=not written, after=written)
    runner = Runner(KeyValue(), P, stores.spine, gated, stores.notifier)  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run)
        await (gated.written if written else gated.waiting).wait()
        tg.cancel_scope.cancel()
    assert runner.position == 500  # it never learned how its second batch ended
    stored = await stores.views.checkpoint(runner.space)
    assert stored == (1000 if written else 500)

    recorder = ReadRecorder(stores.spine)
    restarted = Runner(KeyValue(), P, recorder, stores.views, stores.notifier)  # type: ignore[arg-type]
    assert await restarted.catch_up() == head
    assert recorder.cursors[0] == stored  # neither from 0 nor past what was written
    assert await view_of(restarted) == model(history)
    assert await stores.views.checkpoint(restarted.space) == head


async def test_a_stalled_batch_landing_after_its_successor_caught_up_changes_nothing(stores: Stores) -> None:
    """A runner stalls inside `apply` (its process paused past its lease); another takes the lease
    and projects the whole log; then the stalled batch lands. Its older ops are skipped and the
    checkpoint does not move back."""
    history = await churn(stores.spine, 1200)
    head = await stores.spine.head(P)
    gated = GatedViews(stores.views, gate_at=2, before=True, after=True)
    stalled = Runner(KeyValue(), P, stores.spine, gated, stores.notifier, holder="one")  # type: ignore[arg-type]
    successor = Runner(KeyValue(), P, stores.spine, stores.views, stores.notifier, holder="two")
    async with anyio.create_task_group() as tg:
        tg.start_soon(stalled.catch_up)
        await gated.waiting.wait()  # holding the ops of events 501..1000 and checkpoint 1000
        await stores.views.lease(stalled.space, "one", 0)  # its lease runs out
        assert await successor.catch_up() == head
        assert successor.leading
        gated.opened.set()
        await gated.written.wait()  # the stale batch is in the store, after the successor's
        tg.cancel_scope.cancel()
    assert await view_of(successor) == model(history)
    assert await stores.views.checkpoint(successor.space) == head


CTX = RequestContext(tenant_id="t1", env="dev", project_id="p1", mode="lab", user_id="u1", request_id="r1")
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


async def product_history(spine: EventSpine) -> None:
    """Events of every product view, made by the decisions their routes make: memory sets and
    deletes, session messages, blackboard writes, budget limits and usages (some refused by the
    hard limit, some retried), client audit records."""

    async def append(stream: str, event: NewEvent) -> None:
        await spine.append(P, AppendRequest(stream=stream, events=[event], meta=CTX.event_meta()))

    await set_limit(spine, CTX, LimitChange(period="total", unit="tokens", limit=60, hard=True), NOW)
    await set_limit(spine, CTX, LimitChange(period="day", unit="usd", limit=1, hard=False), NOW)
    for i in range(30):
        key, session, entry = f"k{i % 4}", f"s{i % 2}", f"e{i % 3}"
        await append(memory.stream_of("u1", key), memory.set_event("u1", key, {"i": i}, i % 3 or None, NOW))
        if i % 7 == 6:
            await append(memory.stream_of("u1", key), memory.deleted_event("u1", key))
        await append(sessions.stream_of("u1", session), sessions.message_event("u1", session, "user", i, {}))
        await append(blackboard.stream_of("run-1", entry), blackboard.written_event("run-1", entry, i, "u1"))
        with suppress(BudgetExceeded):  # 1 + 2 + 3 + 4 … passes 60 before the end
            await record_usage(spine, CTX, Usage(amount=1 + i % 4, unit="tokens", id=f"t{i}"), NOW)
        usd = Usage(amount=0.1, unit="usd", cost_usd=0.1, run_id="run-1", id=f"c{i}")
        await record_usage(spine, CTX, usd, NOW)
        if i % 5 == 0:
            assert (await record_usage(spine, CTX, usd, NOW)).replayed  # a retry records nothing
        await append(audit.CLIENT_STREAM, audit.recorded_event("report.exported", f"report:{i}", {"i": i},
                                                               event_id=f"a{i}"))  # fmt: skip


async def dump(views: ViewStore, space: str, collections: Collection[str]) -> dict[tuple[str, str], object]:
    return {
        (collection, doc.key): (doc.position, doc.data)
        for collection in collections
        for doc in await views.list(space, collection, limit=100_000)
    }


@pytest.mark.parametrize("name", sorted(VIEWS))
async def test_a_product_view_is_unchanged_when_its_batches_are_delivered_again(
    stores: Stores, name: str
) -> None:
    """Batches written, then the process died before its runner learned so: the same events are
    delivered again. The view equals one built once; budget totals count each usage once."""
    projection = VIEWS[name][0]
    await product_history(stores.spine)
    log = (await stores.spine.read(P, after=0, limit=10_000)).events
    head = log[-1].position
    read = [e for e in log if projection.handles is None or e.type in projection.handles]
    collections = {op.collection for event in read for op in projection.apply(event)}
    once = f"{P.key}/{name}/once"
    assert await project(projection, P, stores.spine, stores.views, once, 0) == head

    runner = Runner(projection, P, stores.spine, stores.views, stores.notifier)
    assert await runner.catch_up() == head
    # Delivered again as a run from an older checkpoint would (all of it), then as batches of a
    # stalled runner that land after the view has moved on (older windows, each with its checkpoint).
    await project(projection, P, stores.spine, stores.views, runner.space, 0)
    for start, end in ((0, head // 3), (head // 3, head // 2)):
        ops = [op for event in read if start < event.position <= end for op in projection.apply(event)]
        await stores.views.apply(runner.space, ops, checkpoint=end)
    twice = await dump(stores.views, runner.space, collections)
    assert twice == await dump(stores.views, once, collections)
    assert await stores.views.checkpoint(runner.space) == head
    if name == "budget":  # totals are the usages of the log, each counted once
        usages = {unit: [e.data["usage"]["amount"] for e in log if e.stream == f"budget:{unit}"
                         and e.type == USAGE_RECORDED] for unit in ("tokens", "usd")}  # fmt: skip
        assert (len(usages["usd"]), sum(usages["tokens"])) == (30, 60)  # retries recorded nothing; limit hit
        for unit, amounts in usages.items():
            total = await runner.get(TOTALS, totals_prefix("total", "total") + unit)
            assert total is not None
            assert (total.data["amount"], total.data["count"]) == (round(sum(amounts), 9), len(amounts))
        ledger = [
            key for collection, key in twice if collection == LEDGER and key.startswith(ledger_prefix())
        ]
        assert len(ledger) == len(usages["usd"]) + len(usages["tokens"])
