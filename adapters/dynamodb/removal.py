"""Retention on the DynamoDB spine (`EventSpine.remove`): chunks rewritten without the removed events.

A chunk keeps its key (its first position) and `n` (the events it was written with) and gains
`x`, the positions removed from it, so `bodies_of` still numbers the survivors right; a chunk left
with no event is deleted with its parts (layout: `adapters.dynamodb.log`). Nothing else changes:
the head, the stream heads and entries (so every version and the writers' caches stay right),
and the event id items, so a retried append still gets its original positions back.

Which events go: those at or below the head whose version is below their stream's version. A
stream's version only grows, so the one read here can be stale only towards keeping an event:
a stream's last event is never removed.

Concurrency: appends never write at or below the head they moved, so only removals rewrite a
chunk. Each rewrite is conditioned on the chunk as read — it exists, with the same `x` (which only
grows, so its size names the revision); one whose condition fails reads the chunk again and
decides again, so two removals never undo each other and nothing comes back. A reader sees a
chunk before or after a rewrite (one item); one that finds a deleted chunk's parts gone in
between sees its event removed (`adapters.dynamodb.reads.chunk_bodies`).

Cost: positions close together form one run; a run costs a keys-only query for the chunk holding
its start and one query for its chunks, then each touched chunk one conditional write (a few in
flight at once). One batch read fetches the versions of the streams involved.
"""

from __future__ import annotations

import asyncio
import bisect
import uuid
from collections.abc import Collection

import anyio
import msgspec

from adapters.dynamodb.log import CHUNK_EVENTS, HEAD_SK, Chunk, log_pk, part_pk, pos, stream_pk
from adapters.dynamodb.reads import chunk_bodies, chunk_holding, read_head
from adapters.dynamodb.table import Cancelled, ConditionFailed, DynamoTable, Item, key, n, s
from adapters.position_runs import runs_of

_RUN_GAP = CHUNK_EVENTS  # positions further apart are looked up by separate queries
_PARALLEL = 8  # chunk reads or writes in flight at once


class _Owner(msgspec.Struct):
    """What decides whether an event may go: it must not be its stream's last."""

    stream: str
    version: int


_owner_decoder = msgspec.json.Decoder(_Owner)


async def remove(table: DynamoTable, partition: str, positions: Collection[int]) -> int:
    """Remove what may go of `positions` from the partition's log; answer how many went."""
    head = (await read_head(table, partition))[0]
    wanted = sorted({p for p in positions if 1 <= p <= head})
    if not wanted:
        return 0
    limit = anyio.Semaphore(_PARALLEL)
    runs = await asyncio.gather(*(_chunks(table, partition, run, limit) for run in runs_of(wanted, _RUN_GAP)))
    chunks = [found for run in runs for found in run]
    owners: dict[int, _Owner] = {}
    present = set(wanted)
    for _, bodies in chunks:
        owners.update((p, _owner_decoder.decode(body)) for p, body in bodies if p in present)
    versions = await _versions(table, partition, {owner.stream for owner in owners.values()})
    removable = {p for p, owner in owners.items() if owner.version < versions.get(owner.stream, 0)}
    counts = await asyncio.gather(
        *(
            _rewrite(table, partition, chunk, bodies, {p for p, _ in bodies if p in removable}, limit)
            for chunk, bodies in chunks
        )
    )
    return sum(counts)


async def _chunks(
    table: DynamoTable, partition: str, run: list[int], limit: anyio.Semaphore
) -> list[tuple[Item, list[tuple[int, bytes]]]]:
    """The chunks holding some of `run` (sorted), each with its events."""
    async with limit:
        start = await chunk_holding(table, partition, run[0])
        items = await table.query_all(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
            ExpressionAttributeValues={":pk": s(log_pk(partition)), ":a": s(pos(start)), ":b": s(pos(run[-1]))},
        )  # fmt: skip
        found: list[tuple[Item, list[tuple[int, bytes]]]] = []
        for chunk in items:
            first = int(chunk["sk"]["S"])
            # any of the run within the positions it was written with? (it has parts only then)
            if bisect.bisect_left(run, first) < bisect.bisect_left(run, first + int(chunk["n"]["N"])):
                found.append((chunk, await chunk_bodies(table, partition, chunk)))
        return found


async def _versions(table: DynamoTable, partition: str, streams: set[str]) -> dict[str, int]:
    found = await table.get_many([(stream_pk(partition, stream), HEAD_SK) for stream in streams])
    return {pk.rsplit("|", 1)[1]: int(item["v"]["N"]) for (pk, _), item in found.items()}


async def _rewrite(
    table: DynamoTable,
    partition: str,
    chunk: Item,
    bodies: list[tuple[int, bytes]],
    targets: set[int],
    limit: anyio.Semaphore,
) -> int:
    """Write `chunk` without `targets`, conditioned on it as read; read it again when it changed."""
    async with limit:
        while True:
            gone = targets & {p for p, _ in bodies}
            if not gone:
                return 0
            try:
                await _write(table, partition, chunk, [body for p, body in bodies if p not in gone], gone)
            except (ConditionFailed, Cancelled):
                found = await table.get(chunk["pk"]["S"], chunk["sk"]["S"])
                if found is None:
                    return 0  # another removal took its last events
                chunk, bodies = found, await chunk_bodies(table, partition, found)
                continue
            return len(gone)


async def _write(table: DynamoTable, partition: str, chunk: Item, kept: list[bytes], gone: set[int]) -> None:
    removed = {int(p) for p in chunk.get("x", {"NS": []})["NS"]}
    condition: Item = {"ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(x)"}
    if removed:
        condition = {
            "ConditionExpression": "size(x) = :removed",
            "ExpressionAttributeValues": {":removed": n(len(removed))},
        }
    first = int(chunk["sk"]["S"])
    if kept:
        client_ids = [i["S"] for i in chunk.get("cid", {"L": []})["L"]]
        rewritten = Chunk(first, kept, client_ids, frozenset(removed | gone))
        # A chunk of several events has no parts (`adapters.dynamodb.log`): one item.
        (item,) = rewritten.items(partition, with_ids=bool(client_ids))
        await table.call("put_item", Item=item, **condition)
        return
    parts = int(chunk.get("k", {"N": "1"})["N"])
    if parts == 1:
        await table.call("delete_item", Key=key(log_pk(partition), pos(first)), **condition)
        return
    deletes: list[Item] = [
        {"Delete": {"TableName": table.name, "Key": key(log_pk(partition), pos(first)), **condition}},
        *(
            {"Delete": {"TableName": table.name, "Key": key(part_pk(partition, first), f"{i:04d}")}}
            for i in range(1, parts)
        ),
    ]
    await table.transact(deletes, uuid.uuid4().hex)
