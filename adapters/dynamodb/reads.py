"""The DynamoDB spine's read side (layout: `adapters.dynamodb.log`): the head, pages of the log, a stream's
events, and where client ids are stored.

Readers read the partition head first and never look past it: what lies past the head was
committed after it was read, or is a locked append still in flight (`adapters.dynamodb.locked`). A page is
read chunk by chunk from the one holding `after + 1`; a stream is read through its stream
entries, which name the chunks holding its events, fetched in merged ranges. Chunks are found by
range queries and number their events themselves, so what retention removed is simply not there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import anyio

from adapters.dynamodb.log import (
    HEAD_SK,
    bodies_of,
    head_pk,
    id_pk,
    log_pk,
    part_pk,
    peek_decoder,
    pos,
    stream_pk,
)
from adapters.dynamodb.table import DynamoTable, Item, s
from adapters.group_commit import Pending
from domain.append import StoredId, client_ids
from domain.cursor import check_cursor
from domain.events import EncodedEvent, EncodedPage, Event, decode_events
from domain.partition import Partition

_MERGE_GAP = 64  # positions between two chunk ranges a stream read fetches in one query


async def read_head(table: DynamoTable, key: str) -> tuple[int, tuple[str, int] | None]:
    item = await table.get(head_pk(key), HEAD_SK)
    if item is None:
        return 0, None
    head = int(item["h"]["N"]) if "h" in item else 0
    lock = (item["l"]["S"], int(item["u"]["N"])) if "l" in item else None
    return head, lock


async def read_encoded(
    table: DynamoTable,
    partition: Partition,
    *,
    after: int = 0,
    limit: int = 100,
    stream: str | None = None,
    types: Collection[str] = (),
) -> EncodedPage:
    key = partition.key
    head = (await read_head(table, key))[0]
    check_cursor(after, head)
    if after == head or limit <= 0:
        return EncodedPage(events=[], next=head, head=head)
    wanted = frozenset(types)
    events: list[EncodedEvent] = []
    start = await chunk_holding(table, key, after + 1)
    request: dict[str, Any] = {
        "KeyConditionExpression": "pk = :pk AND sk BETWEEN :from AND :to",
        "ExpressionAttributeValues": {":pk": s(log_pk(key)), ":from": s(pos(start)), ":to": s(pos(head))},
        "Limit": 4,
    }
    while True:
        answer = await table.call("query", ConsistentRead=True, **request)
        for chunk in answer.get("Items", []):
            for position, body in await chunk_bodies(table, key, chunk):
                if position <= after:
                    continue
                if stream is not None or wanted:
                    peek = peek_decoder.decode(body)
                    if (stream is not None and peek.stream != stream) or (wanted and peek.type not in wanted):
                        continue
                    events.append((position, peek.type, body))
                else:
                    events.append((position, peek_decoder.decode(body).type, body))
                if len(events) == limit:
                    return EncodedPage(events=events, next=position, head=head)
        last = answer.get("LastEvaluatedKey")
        if not last:
            return EncodedPage(events=events, next=head, head=head)
        request["ExclusiveStartKey"] = last
        request["Limit"] = min(request["Limit"] * 4, 256)


async def chunk_holding(table: DynamoTable, key: str, position: int) -> int:
    """The first position of the chunk holding `position` (or of the last chunk before it)."""
    answer = await table.call(
        "query",
        ConsistentRead=True,
        KeyConditionExpression="pk = :pk AND sk <= :at",
        ExpressionAttributeValues={":pk": s(log_pk(key)), ":at": s(pos(position))},
        ProjectionExpression="sk",
        ScanIndexForward=False,
        Limit=1,
    )
    items = answer.get("Items", [])
    return int(items[0]["sk"]["S"]) if items else position


async def chunk_bodies(table: DynamoTable, key: str, chunk: Item) -> list[tuple[int, bytes]]:
    """A chunk's events as (position, JSON), its parts fetched when it has any."""
    parts: list[bytes] = []
    count = int(chunk.get("k", {"N": "1"})["N"])
    if count > 1:
        first = int(chunk["sk"]["S"])
        items = await table.query_all(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
            ExpressionAttributeValues={
                ":pk": s(part_pk(key, first)), ":a": s(f"{1:04d}"), ":b": s(f"{count - 1:04d}")
            },
        )  # fmt: skip
        parts = [item["z"]["B"] for item in items]
        if len(parts) < count - 1:
            return []  # retention deleted the chunk (one event) since it was read: removed
    return bodies_of(chunk, parts)


async def read_stream(
    table: DynamoTable, partition: Partition, stream: str, *, after_version: int = 0, limit: int = 1000
) -> tuple[list[Event], int]:
    key = partition.key
    item = await table.get(stream_pk(key, stream), HEAD_SK)
    version = int(item["v"]["N"]) if item else 0
    bodies: list[bytes] = []
    after, window = after_version, limit
    # Versions retention removed leave a window short: the next, twice as wide, goes on from it.
    while len(bodies) < limit and after < version:
        upto = min(version, after + window)
        bodies.extend(await _stream_bodies(table, key, stream, after + 1, upto))
        after, window = upto, window * 2
    return decode_events(bodies[:limit]), version


async def _stream_bodies(table: DynamoTable, key: str, stream: str, first: int, upto: int) -> list[bytes]:
    """The stream's events of versions `first .. upto` that are there, in order."""
    holding = await table.call(
        "query",
        ConsistentRead=True,
        KeyConditionExpression="pk = :pk AND sk <= :at",
        ExpressionAttributeValues={":pk": s(stream_pk(key, stream)), ":at": s(pos(first))},
        ScanIndexForward=False,
        Limit=1,
        ProjectionExpression="sk",
    )
    start = int(holding["Items"][0]["sk"]["S"]) if holding.get("Items") else first
    entries = await table.query_all(
        KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
        ExpressionAttributeValues={":pk": s(stream_pk(key, stream)), ":a": s(pos(start)), ":b": s(pos(upto))},
    )  # fmt: skip
    wanted: set[int] = set()
    ranges: list[list[int]] = []
    for entry in entries:
        first_version, first_position = int(entry["sk"]["S"]), int(entry["p"]["N"])
        low = max(first_version, first)
        high = min(first_version + int(entry["n"]["N"]) - 1, upto)
        if low > high:
            continue
        wanted.update(range(first_position + low - first_version, first_position + high - first_version + 1))
        ranges.append([int(entry["c"]["N"]), first_position + high - first_version])
    return await _positions(table, key, _merged(ranges), wanted)


async def _positions(table: DynamoTable, key: str, ranges: list[list[int]], wanted: set[int]) -> list[bytes]:
    limit = anyio.Semaphore(8)

    async def fetch(low: int, high: int) -> list[tuple[int, bytes]]:
        async with limit:
            chunks = await table.query_all(
                KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
                ExpressionAttributeValues={":pk": s(log_pk(key)), ":a": s(pos(low)), ":b": s(pos(high))},
            )  # fmt: skip
            return [
                pair
                for chunk in chunks
                for pair in await chunk_bodies(table, key, chunk)
                if pair[0] in wanted
            ]

    found = await asyncio.gather(*(fetch(low, high) for low, high in ranges))
    return [body for _, body in sorted(pair for pairs in found for pair in pairs)]


def _merged(ranges: list[list[int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + _MERGE_GAP:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return merged


async def stored_ids(table: DynamoTable, key: str, group: list[Pending], head: int) -> dict[str, StoredId]:
    """Stored client ids of the group. Ids past `head` are not committed (or not yet seen): the
    commit's head condition settles them."""
    wanted = {i for pending in group for i in client_ids(pending.request)}
    found = await table.get_many([(id_pk(key, i), HEAD_SK) for i in wanted])
    stored: dict[str, StoredId] = {}
    for (pk, _), item in found.items():
        position = int(item["p"]["N"])
        if position <= head:
            event_id = pk.rsplit("|", 1)[1]
            stored[event_id] = StoredId(event_id, item["s"]["S"], int(item["v"]["N"]), position)
    return stored
