"""The ViewStore contract, run against every adapter (memory, SQLite, and each peer's)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from adapters.cosmos.views import CosmosViewStore
from adapters.memory.views import MemoryViewStore
from domain.ports import ViewStore
from domain.views import Delete, Generations, Upsert, ViewOp, space_of
from tests.backends import VIEWS

P = space_of("t1/dev/p1", "memory", 0)
OTHER = space_of("t2/dev/p1", "memory", 0)


@pytest.fixture(params=list(VIEWS))
async def views(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ViewStore]:
    async with VIEWS[request.param](tmp_path) as store:
        yield store


def up(key: str, position: int, collection: str = "memory", **data: object) -> Upsert:
    return Upsert(collection=collection, key=key, data={"v": position, **data}, position=position)


def gone(key: str, position: int, collection: str = "memory") -> Delete:
    return Delete(collection=collection, key=key, position=position)


async def test_a_document_records_its_data_and_position(views: ViewStore) -> None:
    assert await views.get(P, "memory", "k") is None
    await views.apply(P, [up("k", 3, note="hi")], checkpoint=3)
    doc = await views.get(P, "memory", "k")
    assert doc is not None
    assert (doc.key, doc.position, doc.data) == ("k", 3, {"v": 3, "note": "hi"})


async def test_an_op_that_is_not_newer_is_skipped(views: ViewStore) -> None:
    await views.apply(P, [up("k", 5)], checkpoint=5)
    await views.apply(P, [up("k", 5, again=True), up("k", 4)], checkpoint=5)  # re-delivered, older
    doc = await views.get(P, "memory", "k")
    assert doc is not None
    assert doc.data == {"v": 5}
    await views.apply(P, [up("k", 6)], checkpoint=6)
    assert (await views.get(P, "memory", "k")) == doc.__class__(
        collection="memory", key="k", position=6, data={"v": 6}
    )


async def test_a_delete_leaves_a_tombstone_an_older_upsert_cannot_lift(views: ViewStore) -> None:
    await views.apply(P, [up("k", 1), gone("k", 2)], checkpoint=2)
    assert await views.get(P, "memory", "k") is None
    await views.apply(P, [up("k", 1)], checkpoint=2)  # the old upsert, delivered again
    assert await views.get(P, "memory", "k") is None
    assert await views.list(P, "memory") == []
    await views.apply(P, [up("k", 3)], checkpoint=3)
    doc = await views.get(P, "memory", "k")
    assert doc is not None
    assert doc.position == 3


async def test_list_is_in_key_order_with_prefix_after_and_limit(views: ViewStore) -> None:
    keys = ["run1:b", "run1:a", "run2:a", "run1:c", "run10:a", "run1"]
    await views.apply(P, [up(key, i, collection="bb") for i, key in enumerate(keys, start=1)], checkpoint=6)
    await views.apply(P, [gone("run1:c", 7, collection="bb")], checkpoint=7)
    await views.apply(P, [up("run1:z", 8, collection="other")], checkpoint=8)
    await views.apply(OTHER, [up("run1:y", 1, collection="bb")], checkpoint=1)

    # byte order of the keys ('0' sorts before ':')
    assert [d.key for d in await views.list(P, "bb")] == ["run1", "run10:a", "run1:a", "run1:b", "run2:a"]
    assert [d.key for d in await views.list(P, "bb", prefix="run1:")] == ["run1:a", "run1:b"]
    assert [d.key for d in await views.list(P, "bb", prefix="run1:", after="run1:a")] == ["run1:b"]
    assert [d.key for d in await views.list(P, "bb", limit=2)] == ["run1", "run10:a"]
    assert [d.key for d in await views.list(P, "bb", after="run1:a")] == ["run1:b", "run2:a"]
    assert [d.key for d in await views.list(OTHER, "bb")] == ["run1:y"]


async def test_checkpoints_are_per_space_and_never_move_back(views: ViewStore) -> None:
    assert await views.checkpoint(P) == 0
    await views.apply(P, [], checkpoint=10)
    await views.apply(P, [], checkpoint=7)  # a late, older batch
    assert await views.checkpoint(P) == 10
    assert await views.checkpoint(space_of("t1/dev/p1", "memory", 1)) == 0
    assert await views.checkpoint(OTHER) == 0


async def test_drop_removes_one_space_only(views: ViewStore) -> None:
    retired, serving = space_of("t1/dev/p1", "kv", 0), space_of("t1/dev/p1", "kv", 1)
    await views.apply(retired, [up(f"k{i}", i + 1) for i in range(12_000)], checkpoint=12_000)
    await views.apply(serving, [up("k0", 1)], checkpoint=1)
    await views.drop(retired)
    assert await views.list(retired, "memory") == []
    assert await views.checkpoint(retired) == 0
    assert [d.key for d in await views.list(serving, "memory")] == ["k0"]
    assert await views.checkpoint(serving) == 1


async def test_a_lease_has_one_holder_until_it_lapses(views: ViewStore) -> None:
    assert await views.lease(P, "a", 30)
    assert await views.lease(P, "a", 30)  # a renewal
    assert not await views.lease(P, "b", 30)
    assert await views.lease(OTHER, "b", 30)  # another space
    assert await views.lease(P, "a", 0)  # a zero-length renewal lets it lapse
    assert await views.lease(P, "b", 30)
    assert not await views.lease(P, "a", 30)


async def test_generations_are_kept_per_partition_and_projection(views: ViewStore) -> None:
    assert await views.generations("t1/dev/p1", "memory") == Generations()
    assert await views.known() == []
    await views.set_generations("t1/dev/p1", "memory", Generations(serving=0, building=1))
    await views.set_generations("t1/dev/p1", "blackboard", Generations(serving=2))
    assert await views.generations("t1/dev/p1", "memory") == Generations(serving=0, building=1)
    assert await views.generations("t1/dev/p2", "memory") == Generations()
    await views.set_generations("t1/dev/p1", "memory", Generations(serving=1))
    assert await views.generations("t1/dev/p1", "memory") == Generations(serving=1, building=None)
    assert await views.known() == [("t1/dev/p1", "blackboard"), ("t1/dev/p1", "memory")]


async def test_a_large_batch(views: ViewStore) -> None:
    ops: list[ViewOp] = [up(f"k{i:05d}", i + 1) for i in range(10_000)]
    await views.apply(P, ops, checkpoint=10_000)
    page = await views.list(P, "memory", after="k09997", limit=10)
    assert [d.key for d in page] == ["k09998", "k09999"]
    assert await views.checkpoint(P) == 10_000


@pytest.mark.parametrize("seed", range(5))
async def test_any_delivery_order_with_duplicates_reaches_the_in_order_state(
    views: ViewStore, seed: int
) -> None:
    """What re-delivery after a crash looks like: batches again, out of order. The result must not care."""
    rng = random.Random(seed)
    ops: list[ViewOp] = []
    for position in range(1, 200):
        key = f"k{rng.randrange(12)}"
        ops.append(gone(key, position) if rng.random() < 0.25 else up(key, position, n=rng.randrange(1000)))
    reference = MemoryViewStore()
    await reference.apply(P, ops, checkpoint=len(ops))

    delivered = ops + rng.sample(ops, 80)
    rng.shuffle(delivered)
    for start in range(0, len(delivered), 17):
        await views.apply(P, delivered[start : start + 17], checkpoint=len(ops))
    assert await views.list(P, "memory", limit=100) == await reference.list(P, "memory", limit=100)


def filling(views: ViewStore, room: int) -> list[ViewOp]:
    """Upserts of distinct documents whose `op_size`s add up to `room` exactly: equal ones (at
    most ~400 of them), then one padded to what is left."""

    def op(i: int, pad: int) -> Upsert:
        return up(f"k{i:05d}", i + 1, pad="x" * pad)

    def pad_for(i: int, size: int) -> int:  # the smallest padding that makes op i that size
        low, high = 0, size
        while low < high:
            middle = (low + high) // 2
            low, high = (middle + 1, high) if views.op_size(op(i, middle)) < size else (low, middle)
        return low

    smallest = views.op_size(op(0, 0))
    pad = pad_for(0, max(smallest, room // 400))
    size = views.op_size(op(0, pad))
    count = (room - smallest) // size
    ops: list[ViewOp] = [op(i, pad) for i in range(count)]
    ops.append(op(count, pad_for(count, room - sum(views.op_size(o) for o in ops))))
    return ops


async def test_an_apply_of_max_apply_size_is_all_or_nothing_for_a_reader(views: ViewStore) -> None:
    """A reader polling while an apply of exactly `max_apply_size` commits: once it sees one of
    its documents, it sees all of them and the checkpoint (a reader that caught a commit split in
    two would see the first document before the checkpoint)."""
    room = views.max_apply_size or 300 * views.op_size(up("k00000", 1))  # None: any size is one
    ops = filling(views, room)
    assert sum(views.op_size(op) for op in ops) == room
    seen: list[tuple[int, int]] = []

    async def read() -> None:
        while await views.get(P, "memory", ops[0].key) is None:
            await anyio.lowlevel.checkpoint()  # let the apply run, should a get never wait
        seen.append((await views.checkpoint(P), len(await views.list(P, "memory", limit=len(ops) + 1))))

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await views.apply(P, ops, checkpoint=len(ops))
    if not isinstance(views, CosmosViewStore):  # the gap its docstring states: the peer has no atomic batch
        assert seen == [(len(ops), len(ops))]
    assert await views.checkpoint(P) == len(ops)
    assert [d.key for d in await views.list(P, "memory", limit=len(ops))] == [op.key for op in ops]
