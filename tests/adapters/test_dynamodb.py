"""DynamoDB-specific behaviour the contract suites do not reach: appends larger than one
transaction (the head lock), recovery from an append that died holding it, several writers on
one table, items over 400 KB, and errors when DynamoDB cannot be reached."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import AsyncIterator

import anyio
import pytest

from adapters.dynamodb import spine as dynamodb_spine
from adapters.dynamodb.log import HEAD_SK, head_pk, id_pk, log_pk, pos
from adapters.dynamodb.spine import DynamoDBSpine
from adapters.dynamodb.table import DynamoTable, b, key, n, s
from adapters.dynamodb.views import DynamoDBViewStore
from domain.append import AppendRequest
from domain.errors import BackendUnavailable, IdempotencyConflict
from domain.events import ANY, EventMeta, NewEvent
from domain.partition import Partition
from domain.views import Upsert
from tests.peers import free_port
from tests.peers.dynamodb import REGION, _session, _table

# aiohttp warns that a request body over 1 MiB is sent from memory: what a large transaction is.
pytestmark = pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")

P = Partition(tenant_id="t1", env="dev", project_id="p1")
META = EventMeta(tenant_id="t1", env="dev", project_id="p1")


@pytest.fixture
async def table() -> AsyncIterator[tuple[str, str]]:
    async with _table() as where:
        yield where


def spine_on(where: tuple[str, str], **kwargs: object) -> DynamoDBSpine:
    endpoint, name = where
    return DynamoDBSpine(
        name, region=REGION, endpoint_url=endpoint, session=_session(), create_table=True, **kwargs
    )  # type: ignore[arg-type]


def batch(stream: str, count: int, *, prefix: str | None = None, size: int = 0) -> AppendRequest:
    events = [
        NewEvent(
            type="x.y",
            data={"i": i, "blob": base64.b64encode(os.urandom(size)).decode()} if size else {"i": i},
            id=f"{prefix}-{i}" if prefix else None,
        )
        for i in range(count)
    ]
    return AppendRequest(stream=stream, events=events, expected_version=ANY, meta=META)


async def everything(spine: DynamoDBSpine) -> list[int]:
    positions, cursor = [], 0
    while True:
        page = await spine.read(P, after=cursor, limit=500)
        positions.extend(e.position for e in page.events)
        if page.next >= page.head:
            return positions
        cursor = page.next


async def test_more_client_ids_than_one_transaction_holds_append_atomically(table: tuple[str, str]) -> None:
    async with spine_on(table) as spine:
        await spine.append(P, batch("a", 1))
        result = await spine.append(P, batch("big", 450, prefix="e"))
        assert (result.first_position, result.last_position, result.stream_version) == (2, 451, 450)
        assert await spine.append(P, batch("big", 450, prefix="e")) == result  # a retry
        with pytest.raises(IdempotencyConflict):
            await spine.append(P, batch("big", 451, prefix="e"))
        events, version = await spine.read_stream(P, "big", after_version=100, limit=1000)
        assert version == 450
        assert [e.id for e in events] == [f"e-{i}" for i in range(100, 450)]
        assert await everything(spine) == list(range(1, 452))
        assert (await spine.append(P, batch("a", 1))).first_position == 452


async def test_more_data_than_one_transaction_holds_and_events_over_400_kb(table: tuple[str, str]) -> None:
    async with spine_on(table) as spine:
        result = await spine.append(P, batch("wide", 1500, size=3000))  # ~6 MB, incompressible
        assert (result.first_position, result.last_position) == (1, 1500)
        huge = await spine.append(P, batch("huge", 2, size=700_000))  # each over one item
        assert (huge.first_position, huge.last_position) == (1501, 1502)
        events, _ = await spine.read_stream(P, "huge")
        assert [len(e.data["blob"]) for e in events] == [len(base64.b64encode(bytes(700_000)))] * 2
        page = await spine.read(P, after=1499, limit=10)
        assert [e.position for e in page.events] == [1500, 1501, 1502]


async def test_an_append_that_died_holding_the_lock_is_undone_by_the_next_writer(
    table: tuple[str, str],
) -> None:
    endpoint, name = table
    async with spine_on(table) as spine:
        await spine.append(P, batch("a", 3))
        async with DynamoTable(
            name, kind="event_spine", region=REGION, endpoint_url=endpoint, session=_session()
        ) as raw:
            # What a crashed locked append leaves: the lock (expired), a chunk past the head, its id.
            await raw.call(
                "update_item",
                Key=key(head_pk(P.key), HEAD_SK),
                UpdateExpression="SET l = :l, u = :u",
                ExpressionAttributeValues={":l": s("dead"), ":u": n(int(time.time() * 1000) - 1)},
            )
            chunk = {"pk": s(log_pk(P.key)), "sk": s(pos(4)), "n": n(1), "z": b(b"junk")}
            chunk["cid"] = {"L": [s("ghost")]}
            await raw.call("put_item", Item=chunk)
            ghost = {"pk": s(id_pk(P.key, "ghost")), "sk": s(HEAD_SK), "s": s("a"), "v": n(4), "p": n(4)}
            await raw.call("put_item", Item=ghost)
        async with spine_on(table) as other:  # another process: nothing cached
            result = await other.append(P, batch("b", 1, prefix="ghost"))
        assert result.first_position == 4  # the ghost id was not taken for a stored one
        assert await everything(spine) == [1, 2, 3, 4]
        assert (await spine.read(P, after=3)).events[0].stream == "b"


async def test_a_live_lock_makes_other_writers_wait(table: tuple[str, str]) -> None:
    endpoint, name = table
    async with spine_on(table) as spine:
        await spine.append(P, batch("a", 1))
        async with DynamoTable(
            name, kind="event_spine", region=REGION, endpoint_url=endpoint, session=_session()
        ) as raw:
            await raw.call(
                "update_item",
                Key=key(head_pk(P.key), HEAD_SK),
                UpdateExpression="SET l = :l, u = :u",
                ExpressionAttributeValues={":l": s("slow"), ":u": n(int(time.time() * 1000) + 1500)},
            )
        async with spine_on(table) as other:
            started = time.monotonic()
            assert (await other.append(P, batch("b", 1))).first_position == 2
            assert time.monotonic() - started > 1.0  # waited for the lease to run out


async def test_several_spines_on_one_table_keep_positions_gapless(table: tuple[str, str]) -> None:
    spines = [spine_on(table) for _ in range(3)]
    async with spines[0], spines[1], spines[2]:

        async def write(w: int) -> None:
            for i in range(40):
                await spines[w % 3].append(P, batch(f"w-{w}", 1, prefix=f"w{w}-{i}"))

        async with anyio.create_task_group() as tg:
            for w in range(6):
                tg.start_soon(write, w)
        assert await everything(spines[1]) == list(range(1, 241))
        for w in range(6):
            events, version = await spines[2].read_stream(P, f"w-{w}")
            assert version == 40
            assert [e.version for e in events] == list(range(1, 41))


async def test_an_unreachable_dynamodb_is_backend_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dynamodb_spine, "LOCK_SECONDS", 0.0)
    nowhere = f"http://127.0.0.1:{free_port()}"  # bound, then closed: nothing listens
    spine = DynamoDBSpine(
        "absent", region=REGION, endpoint_url=nowhere, session=_session(), retry_seconds=0.3
    )
    async with spine:
        with pytest.raises(BackendUnavailable) as caught:
            await spine.append(P, batch("a", 1))
        with pytest.raises(BackendUnavailable):
            await spine.head(P)
    assert caught.value.error_code == "event_spine.backend_unavailable"
    assert "local" not in caught.value.message  # never the credentials


async def test_a_view_document_over_400_kb_and_a_batch_over_one_transaction(table: tuple[str, str]) -> None:
    endpoint, name = table
    async with DynamoDBViewStore(
        name, region=REGION, endpoint_url=endpoint, session=_session(), create_table=True
    ) as views:
        blob = base64.b64encode(os.urandom(600_000)).decode()
        ops = [Upsert(collection="c", key=f"k{i:03d}", data={"i": i}, position=i + 1) for i in range(250)]
        ops.append(Upsert(collection="c", key="big", data={"blob": blob}, position=251))
        await views.apply("s", ops, checkpoint=251)
        doc = await views.get("s", "c", "big")
        assert doc is not None
        assert doc.data == {"blob": blob}
        assert [d.key for d in await views.list("s", "c", after="k247")] == ["k248", "k249"]
        assert await views.checkpoint("s") == 251


async def test_an_apply_filling_max_apply_size_is_one_transaction_whatever_its_documents_weigh(
    table: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """99 item slots: a small document takes one; a large one its items, or its bytes in shares
    of 3.8 MB where that is more. Filled to the last slot with documents of ~400 KB compressed (two
    items each, ~3.6 MB in all), an apply is still one transaction with its checkpoint."""
    endpoint, name = table
    async with DynamoDBViewStore(
        name, region=REGION, endpoint_url=endpoint, session=_session(), create_table=True
    ) as views:
        transactions: list[int] = []
        transact = views._table.transact

        async def counted(items: list[dict[str, object]], token: str) -> None:
            transactions.append(len(items))
            await transact(items, token)

        monkeypatch.setattr(views._table, "transact", counted)
        blob = base64.b64encode(os.urandom(400_000)).decode()  # ~400 KB once compressed: two items
        big = Upsert(collection="c", key="big0", data={"blob": blob}, position=1)
        size = views.op_size(big)
        assert size > 2  # its bytes weigh more than its two items
        bigs = [
            Upsert(collection="c", key=f"big{i}", data={"blob": blob}, position=i + 1)
            for i in range(99 // size)
        ]
        smalls = [
            Upsert(collection="c", key=f"k{i:02d}", data={"i": i}, position=100 + i) for i in range(99 % size)
        ]
        ops = [*bigs, *smalls]
        assert sum(views.op_size(op) for op in ops) == views.max_apply_size == 99
        await views.apply("s", ops, checkpoint=200)
        assert transactions == [2 * len(bigs) + len(smalls) + 1]  # documents, their parts, the checkpoint
        assert [d.key for d in await views.list("s", "c", limit=200)] == sorted(op.key for op in ops)
        assert await views.checkpoint("s") == 200


async def test_removing_an_event_over_one_item_deletes_its_chunk_and_parts(table: tuple[str, str]) -> None:
    endpoint, name = table
    async with spine_on(table) as spine:
        await spine.append(P, batch("huge", 2, size=500_000))  # one chunk each, split into parts
        await spine.append(P, batch("a", 1))
        assert await spine.remove(P, [1, 2]) == 1  # 2 is the stream's last event: kept
        events, version = await spine.read_stream(P, "huge")
        assert ([e.position for e in events], version) == ([2], 2)
        assert await everything(spine) == [2, 3]
        async with DynamoTable(
            name, kind="event_spine", region=REGION, endpoint_url=endpoint, session=_session()
        ) as raw:
            left = await raw.query_all(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": s(f"{P.key}|part|{pos(1)}")},
            )
        assert left == []


async def test_racing_removals_and_appends_lose_nothing_and_bring_nothing_back(
    table: tuple[str, str],
) -> None:
    async with spine_on(table) as one, spine_on(table) as two:  # two processes
        for _ in range(10):
            await one.append(P, batch("a", 50))  # positions 1..500, chunks of 50
        counts: list[int] = []

        async def remove(spine: DynamoDBSpine, positions: range) -> None:
            counts.append(await spine.remove(P, positions))

        async with anyio.create_task_group() as tg:
            tg.start_soon(remove, one, range(1, 301))
            tg.start_soon(remove, two, range(100, 401))
            tg.start_soon(remove, two, range(250, 351))
            for _ in range(5):
                tg.start_soon(one.append, P, batch("a", 10))
        assert sum(counts) == 400
        assert await everything(two) == list(range(401, 551))
        assert (await one.append(P, batch("a", 1))).stream_version == 551
