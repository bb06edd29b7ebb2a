"""Cosmos DB adapters: what the contract suites cannot show from one process.

Two adapters on one container stand for two processes: their commits race for positions, their
caches go stale, and a split commit that loses its race must never be seen.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import anyio
import pytest

from adapters.cosmos.spine import CosmosSpine
from adapters.cosmos.views import CosmosViewStore
from domain.errors import BackendUnavailable, VersionConflict
from domain.events import NO_STREAM
from domain.partition import Partition
from domain.views import Upsert, space_of
from tests.contract.test_event_spine import P, all_events, req
from tests.peers.cosmos import DATABASE, KEY, drop_container, endpoint

Spines = Callable[..., AbstractAsyncContextManager[list[CosmosSpine]]]


@pytest.fixture
def spines() -> Spines:
    """`async with spines(n, **options) as [a, b, ...]`: n adapters on one fresh container."""

    @asynccontextmanager
    async def open_(count: int, **options: int) -> AsyncIterator[list[CosmosSpine]]:
        url, container = endpoint(), f"race-{uuid.uuid4().hex[:12]}"
        async with AsyncExitStack() as stack:
            yield [
                await stack.enter_async_context(
                    CosmosSpine(endpoint=url, database=DATABASE, container=container, key=KEY, **options)
                )
                for _ in range(count)
            ]
        await drop_container(url, container)

    return open_


async def test_two_processes_share_one_gapless_log(spines: Spines) -> None:
    async with spines(2) as [one, two]:
        await one.append(P, req("warm", "x"))  # both caches start, then go stale in turn
        await two.append(P, req("warm", "x"))

        async def write(spine: CosmosSpine, w: int) -> None:
            for i in range(15):
                await spine.append(P, req(f"s-{w % 3}", "x", ids=[f"w{w}-{i}"]))

        async with anyio.create_task_group() as tg:
            for w in range(6):
                tg.start_soon(write, (one, two)[w % 2], w)
        events = await all_events(two)
    assert [e.position for e in events] == list(range(1, 93))
    assert len({e.id for e in events}) == 92
    for s in range(3):
        assert [e.version for e in events if e.stream == f"s-{s}"] == list(range(1, 31))


async def test_expected_version_holds_across_processes(spines: Spines) -> None:
    async with spines(2) as [one, two]:
        await one.append(P, req("a", "x"))
        assert (await two.append(P, req("a", "y", expected=1))).stream_version == 2
        with pytest.raises(VersionConflict):  # one's cache says 1: the lost race teaches it 2
            await one.append(P, req("a", "z", expected=1))
        outcomes: list[str] = []

        async def attempt(spine: CosmosSpine) -> None:
            try:
                await spine.append(P, req("race", "x", expected=NO_STREAM))
                outcomes.append("won")
            except VersionConflict:
                outcomes.append("conflict")

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(attempt, (one, two)[i % 2])
    assert sorted(outcomes) == ["conflict"] * 9 + ["won"]


async def test_a_retry_through_another_process_answers_the_original_positions(spines: Spines) -> None:
    async with spines(2, item_bytes=4500) as [one, two]:
        first = await one.append(P, req("a", *["x"] * 40, ids=[f"e-{i}" for i in range(40)]))
        await two.append(P, req("b", "y"))
        again = await two.append(P, req("a", *["x"] * 40, ids=[f"e-{i}" for i in range(40)]))
        assert again == first
        assert await two.head(P) == 41


async def test_split_commits_that_lose_their_race_are_never_seen(spines: Spines) -> None:
    async with spines(2, item_bytes=4500) as [one, two]:

        async def write(spine: CosmosSpine, w: int) -> None:
            for i in range(4):
                await spine.append(P, req(f"big-{w}", *["x"] * 30, ids=[f"w{w}-{i}-{n}" for n in range(30)]))

        async with anyio.create_task_group() as tg:
            for w in range(4):
                tg.start_soon(write, (one, two)[w % 2], w)
        events = await all_events(one)
        assert [e.position for e in events] == list(range(1, 481))
        for w in range(4):
            assert [e.version for e in events if e.stream == f"big-{w}"] == list(range(1, 121))
        store = one._store  # the items themselves: every part belongs to a commit
        key = P.key
        commits = await store.query(
            "SELECT c.first, c.nonce, c.parts FROM c WHERE c.partition = @p AND c.kind = 'commit'",
            key,
            {"@p": key},
        )
        parts = await store.query(
            "SELECT c.commit, c.nonce FROM c WHERE c.partition = @p AND c.kind = 'part'", key, {"@p": key}
        )
    referenced = {(c["first"], c["nonce"]) for c in commits for _ in range(c["parts"])}
    assert {(p["commit"], p["nonce"]) for p in parts} == referenced
    assert len(parts) == sum(c["parts"] for c in commits) > 0


async def test_reads_of_other_partitions_and_streams_need_no_writer(spines: Spines) -> None:
    other = Partition(tenant_id="t9", env="dev", project_id="p1")
    async with spines(2) as [one, two]:
        await one.append(other, req("a", "x", partition=other))
        assert await two.head(other) == 1
        assert await two.head(P) == 0
        events, version = await two.read_stream(other, "a")
        assert (version, [e.type for e in events]) == (1, ["x"])


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_account_is_backend_unavailable_and_names_no_key() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(BackendUnavailable) as spine_error:
        async with CosmosSpine(endpoint=url, database=DATABASE, key=KEY):
            pass
    with pytest.raises(BackendUnavailable) as views_error:
        async with CosmosViewStore(endpoint=url, database=DATABASE, key=KEY):
            pass
    assert spine_error.value.error_code == "event_spine.backend_unavailable"
    assert views_error.value.error_code == "view_store.backend_unavailable"
    for error in (spine_error.value, views_error.value):
        assert KEY not in str(error)
        assert KEY[:12] not in error.message


async def test_a_container_partitioned_by_another_path_is_refused() -> None:
    from azure.cosmos import PartitionKey
    from azure.cosmos.aio import CosmosClient

    url, container = endpoint(), f"other-{uuid.uuid4().hex[:12]}"
    async with CosmosClient(url, KEY, enable_endpoint_discovery=False) as client:
        database = await client.create_database_if_not_exists(DATABASE)
        await database.create_container(container, partition_key=PartitionKey("/tenant"))
        try:
            with pytest.raises(BackendUnavailable, match="partitioned by"):
                async with CosmosViewStore(endpoint=url, database=DATABASE, container=container, key=KEY):
                    pass
        finally:
            await database.delete_container(container)


async def test_two_view_stores_racing_keep_the_newest_document() -> None:
    url, container = endpoint(), f"views-{uuid.uuid4().hex[:12]}"
    space = space_of("t1/dev/p1", "memory", 0)
    async with (
        CosmosViewStore(endpoint=url, database=DATABASE, container=container, key=KEY) as one,
        CosmosViewStore(endpoint=url, database=DATABASE, container=container, key=KEY) as two,
    ):
        ops = [Upsert(collection="memory", key=f"k{i % 5}", data={"v": i}, position=i) for i in range(1, 101)]
        async with anyio.create_task_group() as tg:
            for start in range(0, 100, 10):
                tg.start_soon(
                    one.apply if start % 20 else two.apply, space, ops[start : start + 10], start + 10
                )
        docs = await one.list(space, "memory")
        assert [(d.key, d.position) for d in docs] == [(f"k{i}", 96 + (i - 1) % 5) for i in range(5)]
        assert await two.checkpoint(space) == 100
    await drop_container(url, container)


async def test_racing_removals_and_appends_lose_nothing_and_bring_nothing_back(spines: Spines) -> None:
    async with spines(2, item_bytes=4500) as [one, two]:  # small items: commits split into parts
        for _ in range(10):
            await one.append(P, req("a", *["x"] * 50))  # positions 1..500
        counts: list[int] = []

        async def remove(spine: CosmosSpine, positions: range) -> None:
            counts.append(await spine.remove(P, positions))

        async with anyio.create_task_group() as tg:
            tg.start_soon(remove, one, range(1, 301))
            tg.start_soon(remove, two, range(100, 401))
            tg.start_soon(remove, two, range(250, 351))
            for _ in range(5):
                tg.start_soon(one.append, P, req("a", *["x"] * 10))
        assert sum(counts) == 400
        assert [e.position for e in await all_events(two)] == list(range(401, 551))
        assert (await two.append(P, req("a", "x"))).stream_version == 551
