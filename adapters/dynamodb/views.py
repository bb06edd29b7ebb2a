"""DynamoDB view store: view documents, checkpoints, leases and generations in one table.

| item | pk | sk | attributes |
|---|---|---|---|
| document | `d|{space}` | `{collection}|{key}` | `p` position; `d` JSON (absent: a tombstone), `z` when zlib-compressed, `k` parts when split |
| document part | `dp|{space}` | `{collection}|{key}|{i}` | `d` the i-th slice of a split document |
| space | `m|{space}` | `_` | `cp` checkpoint, `holder` and `until` (unix seconds) of the lease |
| generations | `g` | `{partition}|{projection}` | `serving`, `building` |

A space's documents share a partition key, so `list` is one range query in key order (DynamoDB
compares strings by their UTF-8 bytes, as SQLite does) and `drop` finds all of them. Collections
must not contain `|`. A document over `_COMPRESS_OVER` bytes of JSON is compressed, and one still
over `_PART_BYTES` is split into parts: DynamoDB items hold at most 400 KB.

`apply` writes each document with the condition "absent, or older than this op" and the
checkpoint with "absent, or lower". An op whose condition fails was delivered before: the
transaction's cancellation reasons name those items, and it is retried without them.

Atomicity: a DynamoDB transaction holds at most 100 items and 4 MB. `max_apply_size` is 99 item
slots (the 100th item is the checkpoint) and `op_size` counts the items a document's write takes
(the document and its parts), or one slot per `_SLOT_BYTES` it carries where that is more, so ops
that fill the 99 slots also stay under the 3.8 MB this store allows a transaction. An `apply`
whose ops (the newest per document) fit is one transaction with its checkpoint; the projection
runtime issues no larger one unless a single event's own ops exceed it.

The gap: a larger apply is written in several transactions, in parallel, and the checkpoint after
all of them succeeded: if one fails, `apply` raises with some ops written and the checkpoint
unmoved. The projection delivers those events again and the position rule skips what was written,
so the view converges to the same state; a reader may meanwhile see part of that batch. And even
one transaction is isolated only from single-item reads (`get`, `checkpoint`): a `list` is a Query,
which DynamoDB isolates from transactions read-committed only, so a page read while an apply
commits may hold some of its documents and not the others.

Leases use wall-clock time (`time.time()`), since processes share them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import zlib
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import anyio
import msgspec

from adapters.dynamodb.table import Cancelled, ConditionFailed, DynamoTable, Item, b, key, n, s
from domain.timeouts import Timeouts
from domain.views import Delete, Generations, ViewDoc, ViewOp

KIND = "view_store"
_SK = "_"
_MAX_ITEMS = 100
_MAX_BYTES = 3_800_000
_ITEM_OVERHEAD = 300
_COMPRESS_OVER = 8 * 1024
_PART_BYTES = 350_000
_PARALLEL = 8
_SLOT_BYTES = _MAX_BYTES // (_MAX_ITEMS - 1)  # one item slot's share of a transaction's bytes
_encoder = msgspec.json.Encoder()
_data_decoder = msgspec.json.Decoder(dict)
_Known = list[tuple[str, str]]  # named here: inside the class, `list` is the method
_Docs = list[ViewDoc]
_Unit = list[Item]  # a document's write and its parts' writes
_Units = list[_Unit]


def _docs_pk(space: str) -> str:
    return f"d|{space}"


def _parts_pk(space: str) -> str:
    return f"dp|{space}"


def _space_pk(space: str) -> str:
    return f"m|{space}"


def _doc_sk(collection: str, key_: str) -> str:
    if "|" in collection:
        raise ValueError(f"a view collection name cannot contain '|': {collection!r}")
    return f"{collection}|{key_}"


class DynamoDBViewStore:
    """`async with DynamoDBViewStore(table, region=…) as views:`."""

    max_apply_size: int | None = _MAX_ITEMS - 1  # item slots, one kept for the checkpoint

    def __init__(
        self,
        table: str,
        *,
        region: str,
        endpoint_url: str | None = None,
        session: Any = None,
        create_table: bool = False,
        timeouts: Timeouts | None = None,
        retry_seconds: float | None = None,
    ) -> None:
        self._table = DynamoTable(
            table,
            kind=KIND,
            region=region,
            endpoint_url=endpoint_url,
            session=session,
            create=create_table,
            timeouts=timeouts,
            retry_seconds=retry_seconds,
        )

    async def __aenter__(self) -> DynamoDBViewStore:
        await self._table.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._table.__aexit__(exc_type, exc, tb)

    # documents

    async def get(self, space: str, collection: str, key: str) -> ViewDoc | None:
        item = await self._table.get(_docs_pk(space), _doc_sk(collection, key))
        if item is None or "d" not in item:
            return None
        return await self._doc(space, collection, key, item)

    async def list(
        self, space: str, collection: str, *, prefix: str = "", after: str = "", limit: int = 100
    ) -> list[ViewDoc]:
        if limit <= 0 or (after > prefix and not after.startswith(prefix)):
            return []  # every key with the prefix sorts before `after`
        request: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "FilterExpression": "attribute_exists(d)",
            "ExpressionAttributeValues": {
                ":pk": s(_docs_pk(space)),
                ":prefix": s(_doc_sk(collection, prefix)),
            },
            "Limit": limit,
        }
        if after >= prefix and after:
            request["ExclusiveStartKey"] = key(_docs_pk(space), _doc_sk(collection, after))
        docs: _Docs = []
        while len(docs) < limit:
            answer = await self._table.call("query", ConsistentRead=True, **request)
            for item in answer.get("Items", [])[: limit - len(docs)]:
                doc_key = item["sk"]["S"][len(collection) + 1 :]
                docs.append(await self._doc(space, collection, doc_key, item))
            last = answer.get("LastEvaluatedKey")
            if not last:
                break
            request["ExclusiveStartKey"] = last
        return docs

    async def _doc(self, space: str, collection: str, key_: str, item: Item) -> ViewDoc:
        data: bytes = item["d"]["B"]
        parts = int(item.get("k", {"N": "1"})["N"])
        if parts > 1:
            sk = _doc_sk(collection, key_)
            found = await self._table.get_many([(_parts_pk(space), f"{sk}|{i}") for i in range(1, parts)])
            data += b"".join(found[(_parts_pk(space), f"{sk}|{i}")]["d"]["B"] for i in range(1, parts))
        if "z" in item:
            data = zlib.decompress(data)
        return ViewDoc(
            collection=collection, key=key_, position=int(item["p"]["N"]), data=_data_decoder.decode(data)
        )

    async def apply(self, space: str, ops: Sequence[ViewOp], checkpoint: int) -> None:
        newest: dict[tuple[str, str], ViewOp] = {}
        for op in ops:
            sk = _doc_sk(op.collection, op.key)
            seen = newest.get((op.collection, sk))
            if seen is None or op.position > seen.position:
                newest[(op.collection, sk)] = op
        units = [self._writes(space, sk, op) for (_, sk), op in newest.items()]
        batches = _batches(units)
        mark = self._checkpoint_write(space, checkpoint)
        if len(batches) <= 1:  # at most 99 items: the checkpoint joins them in one transaction
            await self._transact([*(batches[0] if batches else []), [mark]])
            return
        limit = anyio.Semaphore(_PARALLEL)

        async def write(batch: _Units) -> None:
            async with limit:
                await self._transact(batch)

        await asyncio.gather(*(write(batch) for batch in batches))
        await self._transact([[mark]])

    def op_size(self, op: ViewOp) -> int:
        """Item slots: the items of the document's write, or its bytes in `_SLOT_BYTES`, if more."""
        unit = self._writes("", _doc_sk(op.collection, op.key), op)
        return max(len(unit), -(-_unit_bytes(unit) // _SLOT_BYTES))

    def _writes(self, space: str, sk: str, op: ViewOp) -> _Unit:
        """The document's conditional put, then any parts it is split into."""
        item: Item = {"pk": s(_docs_pk(space)), "sk": s(sk), "p": n(op.position)}
        parts: _Unit = []
        if not isinstance(op, Delete):
            data = _encoder.encode(op.data)
            if len(data) > _COMPRESS_OVER:
                data = zlib.compress(data)
                item["z"] = n(1)
            slices = [data[i : i + _PART_BYTES] for i in range(0, len(data), _PART_BYTES)] or [b""]
            item["d"] = b(slices[0])
            if len(slices) > 1:
                item["k"] = n(len(slices))
            parts = [
                {"Put": {"Item": {"pk": s(_parts_pk(space)), "sk": s(f"{sk}|{i}"), "d": b(piece)}}}
                for i, piece in enumerate(slices[1:], start=1)
            ]
        put = {
            "Put": {
                "Item": item,
                "ConditionExpression": "attribute_not_exists(p) OR p < :p",
                "ExpressionAttributeValues": {":p": n(op.position)},
            }
        }
        return [put, *parts]

    def _checkpoint_write(self, space: str, checkpoint: int) -> Item:
        return {
            "Update": {
                "Key": key(_space_pk(space), _SK),
                "UpdateExpression": "SET cp = :cp",
                "ConditionExpression": "attribute_not_exists(cp) OR cp < :cp",
                "ExpressionAttributeValues": {":cp": n(checkpoint)},
            }
        }

    async def _transact(self, units: _Units) -> None:
        """One transaction of these units (a write and its parts); a unit whose condition fails
        (an op not newer than its document, a checkpoint not higher) is dropped and the rest retried."""
        while units:
            items = [{verb: {**body, "TableName": self._table.name}} for unit in units for item in unit
                     for verb, body in item.items()]  # fmt: skip
            try:
                await self._table.transact(items, uuid.uuid4().hex)
            except Cancelled as cancelled:
                starts, index = [], 0
                for unit in units:
                    starts.append(index)
                    index += len(unit)
                failed = set(cancelled.failed)
                units = [unit for unit, start in zip(units, starts, strict=True) if start not in failed]
            else:
                return

    async def checkpoint(self, space: str) -> int:
        item = await self._table.get(_space_pk(space), _SK, projection="cp")
        return int(item["cp"]["N"]) if item and "cp" in item else 0

    async def drop(self, space: str) -> None:
        keys: list[tuple[str, str]] = []
        for pk in (_docs_pk(space), _parts_pk(space)):
            items = await self._table.query_all(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": s(pk)},
                ProjectionExpression="pk, sk",
            )
            keys.extend((item["pk"]["S"], item["sk"]["S"]) for item in items)
        await self._table.delete_many(keys)
        await self._table.call("delete_item", Key=key(_space_pk(space), _SK))

    async def lease(self, space: str, holder: str, seconds: float) -> bool:
        now = time.time()
        try:
            await self._table.call(
                "update_item",
                Key=key(_space_pk(space), _SK),
                UpdateExpression="SET holder = :holder, #until = :until",
                ConditionExpression="attribute_not_exists(holder) OR holder = :holder OR #until < :now",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={":holder": s(holder), ":until": n(now + seconds), ":now": n(now)},
            )
        except ConditionFailed:
            return False
        return True

    # generations

    async def generations(self, partition_key: str, projection: str) -> Generations:
        item = await self._table.get("g", f"{partition_key}|{projection}")
        if item is None:
            return Generations()
        building = int(item["building"]["N"]) if "building" in item else None
        return Generations(serving=int(item["serving"]["N"]), building=building)

    async def set_generations(self, partition_key: str, projection: str, generations: Generations) -> None:
        item: Item = {
            "pk": s("g"),
            "sk": s(f"{partition_key}|{projection}"),
            "serving": n(generations.serving),
        }
        if generations.building is not None:
            item["building"] = n(generations.building)
        await self._table.call("put_item", Item=item)

    async def known(self) -> _Known:
        items = await self._table.query_all(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": s("g")},
            ProjectionExpression="sk",
        )
        # never raises on what is stored: a record of another shape is handed on for the caller to skip
        pairs = (str(item.get("sk", {}).get("S", "")).partition("|") for item in items)
        return sorted((pkey, projection) for pkey, _, projection in pairs)


def _batches(units: _Units) -> list[_Units]:
    """Units packed into transactions of at most 99 items (a slot for the checkpoint) and 3.8 MB."""
    batches: list[_Units] = []
    count = size = 0
    for unit in units:
        grow = _unit_bytes(unit)
        if not batches or count + len(unit) > _MAX_ITEMS - 1 or size + grow > _MAX_BYTES:
            batches.append([])
            count = size = 0
        batches[-1].append(unit)
        count += len(unit)
        size += grow
    return batches


def _unit_bytes(unit: _Unit) -> int:
    """What a document's writes count toward a transaction's bytes, as `_batches` packs them."""
    return sum(_ITEM_OVERHEAD + _bytes(item) for item in unit)


def _bytes(item: Item) -> int:
    ((_, body),) = item.items()
    return sum(len(value["B"]) for value in body["Item"].values() if "B" in value)
