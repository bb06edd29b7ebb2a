"""Firestore-specific behaviour the contract suites do not reach: events and view documents over
1 MiB, appends over one transaction, two writers (two processes' clients) on one project, a
commit whose answer was lost, throttling, and errors when Firestore cannot be reached."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import closing
from typing import Any

import anyio
import pytest
from google.api_core import exceptions as google_errors
from google.cloud.firestore_v1.async_transaction import AsyncTransaction

from adapters.firestore.commits import commits_of, part_refs
from adapters.firestore.spine import FirestoreSpine
from adapters.firestore.views import FirestoreViewStore
from domain.append import AppendRequest
from domain.errors import BackendUnavailable, InvalidRequest
from domain.events import ANY, EventMeta, NewEvent
from domain.partition import Partition
from domain.views import Delete, Upsert, space_of
from tests.contract.test_event_spine import P, all_events, req
from tests.peers.firestore import project_config

META = EventMeta(tenant_id="t1", env="dev", project_id="p1")
SPACE = space_of("t1/dev/p1", "memory", 0)


@pytest.fixture
async def config() -> AsyncIterator[dict[str, object]]:
    async with project_config() as where:
        yield where


def batch(stream: str, sizes: list[int], *, prefix: str | None = None) -> AppendRequest:
    events = [
        NewEvent(type="x.y", data={"i": i, "blob": "x" * size}, id=f"{prefix}-{i}" if prefix else None)
        for i, size in enumerate(sizes)
    ]
    return AppendRequest(stream=stream, events=events, expected_version=ANY, meta=META)


async def test_an_event_over_one_mib_is_split_across_documents_and_reads_back_whole(
    config: dict[str, object],
) -> None:
    async with FirestoreSpine.from_config(config) as spine:
        await spine.append(P, req("a", "x"))
        result = await spine.append(P, batch("big", [10, 2_500_000, 10], prefix="b"))
        assert (result.first_position, result.last_position) == (2, 4)
        assert await spine.append(P, batch("big", [10, 2_500_000, 10], prefix="b")) == result  # a retry
        await spine.append(P, req("a", "y"))

        events = await all_events(spine)
        assert [(e.position, e.stream, len(e.data.get("blob", ""))) for e in events] == [
            (1, "a", 0), (2, "big", 10), (3, "big", 2_500_000), (4, "big", 10), (5, "a", 0),
        ]  # fmt: skip
        encoded = await spine.read_encoded(P, after=2, limit=1)
        assert [(position, len(body) > 2_500_000) for position, _, body in encoded.events] == [(3, True)]
        stream, version = await spine.read_stream(P, "big", after_version=1)
        assert version == 3
        assert [len(e.data["blob"]) for e in stream] == [2_500_000, 10]

        docs = [d async for d in commits_of(spine.client, P.key).stream()]
        split = [d for d in docs if (d.to_dict() or {}).get("parts", 1) > 1]
        assert len(split) == 1
        parts = [p async for p in spine.client.get_all(part_refs(spine.client, P.key, split[0].id, 3))]
        assert all(p.exists for p in parts)


async def test_large_events_are_packed_into_several_commit_documents(config: dict[str, object]) -> None:
    async with FirestoreSpine.from_config(config) as spine:
        result = await spine.append(P, batch("a", [300_000] * 12))
        assert (result.first_position, result.last_position) == (1, 12)
        docs = [d async for d in commits_of(spine.client, P.key).stream()]
        assert len(docs) > 3
        assert sorted((d.get("first"), d.get("last")) for d in docs)[0][0] == 1
        assert [e.position for e in await all_events(spine)] == list(range(1, 13))


async def test_an_append_larger_than_one_transaction_is_refused_whole(config: dict[str, object]) -> None:
    async with FirestoreSpine.from_config(config) as spine:
        with pytest.raises(InvalidRequest, match="does not fit one Firestore transaction"):
            await spine.append(P, batch("a", [1_000_000] * 11))
        assert await spine.head(P) == 0


async def test_an_append_just_under_the_transaction_budget_lands(config: dict[str, object]) -> None:
    """Against the emulator the budget is 3.9 MB (its gRPC server takes 4 MiB messages)."""
    async with FirestoreSpine.from_config(config) as spine:
        result = await spine.append(P, batch("a", [1_200_000, 1_200_000, 1_200_000, 10]))
        assert result.last_position == 4
        assert [len(e.data["blob"]) for e in await all_events(spine)] == [1_200_000] * 3 + [10]


async def test_two_writers_on_one_project_keep_positions_gapless(config: dict[str, object]) -> None:
    """Two spines are two clients, as two processes would be: the head document serializes them.

    The emulator serves two conflicting transactions by holding the loser's locks for seconds, so
    on a loaded machine the default 5 s request budget can run out before it lets go; this test is
    about positions, not latency, so it gives the route a budget the emulator cannot outlast.
    """
    patient = {**config, "request_timeout_seconds": 120}
    async with FirestoreSpine.from_config(patient) as one, FirestoreSpine.from_config(patient) as two:

        async def write(spine: FirestoreSpine, name: str) -> None:
            for i in range(2):
                await spine.append(P, req(name, "x", "y", ids=[f"{name}-{i}-x", f"{name}-{i}-y"]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(write, one, "one")
            tg.start_soon(write, two, "two")
        events = await all_events(one)
    assert [e.position for e in events] == list(range(1, 9))
    for name in ("one", "two"):
        assert [(e.version, e.type) for e in events if e.stream == name] == [
            (1, "x"),
            (2, "y"),
            (3, "x"),
            (4, "y"),
        ]
    # each batch is contiguous: the other writer's events never fall between its two
    assert all(events[i].stream == events[i + 1].stream for i in range(0, 8, 2))


async def test_a_commit_whose_answer_was_lost_is_not_written_twice(
    config: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit lands, the answer does not: the retry finds its token and answers, writing nothing."""
    real_commit = AsyncTransaction._commit
    lost = [True]

    async def commit_then_lose_the_answer(self: AsyncTransaction) -> Any:
        result = await real_commit(self)
        if self._write_pbs is not None and lost[0] and len(self.write_results) > 1:
            lost[0] = False
            raise google_errors.ServiceUnavailable("the connection dropped")
        return result

    async with FirestoreSpine.from_config(config) as spine:
        monkeypatch.setattr(AsyncTransaction, "_commit", commit_then_lose_the_answer)
        result = await spine.append(P, req("a", "x", "y"))  # generated ids: only the token can tell
        monkeypatch.undo()
        assert not lost[0]
        assert (result.first_position, result.last_position) == (1, 2)
        assert await spine.head(P) == 2
        assert len(await all_events(spine)) == 2


async def test_throttling_is_retried_then_the_append_lands(
    config: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_commit = AsyncTransaction._commit
    refusals = [2]

    async def throttled(self: AsyncTransaction) -> Any:
        if refusals[0]:
            refusals[0] -= 1
            raise google_errors.ResourceExhausted("quota")
        return await real_commit(self)

    async with FirestoreSpine.from_config(config) as spine:
        monkeypatch.setattr(AsyncTransaction, "_commit", throttled)
        result = await spine.append(P, req("a", "x"))
        monkeypatch.undo()
    assert refusals == [0]
    assert result.last_position == 1


def _closed_port() -> str:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


async def test_an_unreachable_firestore_is_a_503_after_bounded_retries() -> None:
    host = _closed_port()
    async with FirestoreSpine(
        project="nowhere", emulator_host=host, retry_seconds=1, attempt_seconds=0.5
    ) as spine:
        with anyio.fail_after(10), pytest.raises(BackendUnavailable) as caught:
            await spine.append(P, req("a", "x"))
        assert caught.value.error_code == "event_spine.backend_unavailable"
        with anyio.fail_after(10), pytest.raises(BackendUnavailable):
            await spine.read(P)
    views = FirestoreViewStore(project="nowhere", emulator_host=host, kind="memory_store", retry_seconds=0.5)
    async with views:
        with anyio.fail_after(10), pytest.raises(BackendUnavailable) as caught:
            await views.get(SPACE, "memory", "k")
    assert caught.value.error_code == "memory_store.backend_unavailable"
    assert host not in caught.value.message


@pytest.mark.parametrize("config", [{}, {"project": ""}, {"project": "p", "database": 3}])
def test_a_route_config_without_a_usable_project_is_refused(config: dict[str, object]) -> None:
    with pytest.raises(BackendUnavailable, match="firestore route"):
        FirestoreSpine.from_config(config)


async def test_odd_partition_and_stream_names(config: dict[str, object]) -> None:
    odd = Partition(tenant_id="__t.1__", env="dev", project_id="p:1-__")
    async with FirestoreSpine.from_config(config) as spine:
        for stream in ("__odd__", "a.b@c+d=e~f-g:h", "with`tick"):
            await spine.append(odd, req(stream, "x", "y", partition=odd))
        events, version = await spine.read_stream(odd, "a.b@c+d=e~f-g:h", after_version=1)
        assert (version, [e.version for e in events]) == (2, [2])
        page = await spine.read(odd, stream="__odd__")
        assert [e.position for e in page.events] == [1, 2]
        assert await spine.read(P) == await spine.read(P)  # untouched partition: empty
        assert await spine.head(odd) == 6


async def test_an_apply_over_one_commit_is_written_in_several_with_the_checkpoint_last(
    config: dict[str, object],
) -> None:
    ops = [
        Upsert(collection="c", key=f"k{i}", data={"blob": "z" * 900_000}, position=i + 1) for i in range(6)
    ]
    async with FirestoreViewStore.from_config(config) as views:
        await views.apply(SPACE, ops, checkpoint=6)
        assert [d.position for d in await views.list(SPACE, "c")] == [1, 2, 3, 4, 5, 6]
        assert await views.checkpoint(SPACE) == 6


async def test_a_view_document_over_one_mib_is_split_and_shrinks_cleanly(config: dict[str, object]) -> None:
    big = {"blob": "y" * 2_300_000}
    async with FirestoreViewStore.from_config(config) as views:
        await views.apply(SPACE, [Upsert(collection="c", key="k", data=big, position=1)], checkpoint=1)
        doc = await views.get(SPACE, "c", "k")
        assert doc is not None
        assert doc.data == big
        assert [d.key for d in await views.list(SPACE, "c")] == ["k"]

        await views.apply(
            SPACE, [Upsert(collection="c", key="k", data={"small": 1}, position=2)], checkpoint=2
        )
        collection = views._collection(SPACE, "c")
        assert len([d async for d in collection.stream()]) == 1  # the old parts are gone
        assert (await views.get(SPACE, "c", "k")).data == {"small": 1}  # type: ignore[union-attr]

        await views.apply(SPACE, [Upsert(collection="c", key="k", data=big, position=3)], checkpoint=3)
        await views.apply(SPACE, [Delete(collection="c", key="k", position=4)], checkpoint=4)
        assert len([d async for d in collection.stream()]) == 1  # a tombstone only
        assert await views.get(SPACE, "c", "k") is None
        assert await views.list(SPACE, "c") == []


async def test_an_apply_of_max_apply_size_is_one_transaction_and_one_op_more_is_two(
    config: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`max_apply_size` is the very figure at which the store cuts an apply in two."""

    def blob(key: str, size: int, position: int) -> Upsert:
        return Upsert(collection="c", key=key, data={"blob": "z" * size}, position=position)

    async with FirestoreViewStore.from_config(config) as views:
        transactions: list[str] = []
        transaction = views._transaction

        async def counted(body: Any, *args: Any, **options: Any) -> Any:
            transactions.append(body.__name__)
            return await transaction(body, *args, **options)

        monkeypatch.setattr(views, "_transaction", counted)
        room = views.max_apply_size
        assert room is not None
        ops = [blob(f"k{i}", 900_000, i + 1) for i in range(room // 950_000)]  # the rest: one document
        rest = room - sum(views.op_size(op) for op in ops)
        ops.append(blob("last", rest - views.op_size(blob("last", 0, 9)), 9))
        assert sum(views.op_size(op) for op in ops) == room
        await views.apply(SPACE, ops, checkpoint=9)
        assert transactions == ["_apply"]
        assert await views.checkpoint(SPACE) == 9

        transactions.clear()
        newer = [blob(op.key, len(op.data["blob"]), 10) for op in ops]
        await views.apply(SPACE, [*newer, blob("one-more", 0, 10)], checkpoint=10)
        assert transactions == ["_apply", "_apply"]
        assert {d.key: d.position for d in await views.list(SPACE, "c")} == {
            **{op.key: 10 for op in ops},
            "one-more": 10,
        }
        assert await views.checkpoint(SPACE) == 10


async def test_removing_an_event_over_one_mib_deletes_its_parts(config: dict[str, object]) -> None:
    async with FirestoreSpine.from_config(config) as spine:
        await spine.append(P, batch("big", [10, 2_500_000, 10]))  # 2 alone, split across parts
        assert await spine.remove(P, [1, 2, 3]) == 2  # 3 is the stream's last event: kept
        events, version = await spine.read_stream(P, "big")
        assert ([e.position for e in events], version) == ([3], 3)
        assert [e.position for e in await all_events(spine)] == [3]
        docs = [d async for d in commits_of(spine.client, P.key).stream()]
        split = [d for d in docs if d.get("first") == 2]
        assert (split[0].to_dict() or {}).get("parts") is None
        parts = [p async for p in spine.client.get_all(part_refs(spine.client, P.key, split[0].id, 3))]
        assert not any(p.exists for p in parts)


async def test_racing_removals_and_appends_lose_nothing_and_bring_nothing_back(
    config: dict[str, object],
) -> None:
    """Two clients, as two processes; the emulator holds a conflicting transaction's locks for
    seconds (see the test of two writers): the budget is one it cannot outlast."""
    patient = {**config, "request_timeout_seconds": 120}
    async with FirestoreSpine.from_config(patient) as one, FirestoreSpine.from_config(patient) as two:
        for _ in range(4):
            await one.append(P, req("a", *["x"] * 25))  # positions 1..100, a commit per 25
        counts: list[int] = []

        async def remove(spine: FirestoreSpine, positions: range) -> None:
            counts.append(await spine.remove(P, positions))

        async with anyio.create_task_group() as tg:
            tg.start_soon(remove, one, range(1, 61))
            tg.start_soon(remove, two, range(20, 81))
            tg.start_soon(one.append, P, req("a", "x", "x"))
        assert sum(counts) == 80
        assert [e.position for e in await all_events(two)] == list(range(81, 103))
        assert (await two.append(P, req("a", "x"))).stream_version == 103
