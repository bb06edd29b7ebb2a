"""Cosmos DB view store (`azure.cosmos.aio`): one container partitioned by `/partition`.

Layout: each space is one logical partition holding its documents (id `d` + SHA-256 of collection
and key; fields `collection`, `key`, `position`, `live`, and `data` as a JSON string, so numbers
keep their exact value), its `checkpoint` item and its `lease` item. Generations live in the
logical partition `~generations` (no space can be named so: spaces contain '/'), one item per
(partition key, projection).

The position rule is enforced with optimistic concurrency: an apply reads the positions and ETags
of the documents it touches, creates the absent ones (transactional batches of creates) and
replaces the older ones `If-Match` their ETag; a document another writer changed in between is
read again and decided again. Re-delivery is therefore harmless, whatever the order.

Atomicity, and what is missing for it: Cosmos makes one item atomic, and a transactional batch of
at most 100 operations; the peer the tests run against (`@vercel/cosmosdb-server`) makes batches
not atomic and accepts only creates in them. So `apply` does not depend on batches being atomic:
it writes its documents first and moves the checkpoint last. An apply that fails part-way raises
`BackendUnavailable` with its checkpoint unmoved and some of its documents already written, each
correct for its own position; the projection runtime re-delivers from the checkpoint and
converges on the same state. Until then a reader may see some of the batch's documents before the
checkpoint says they are there: ops are all-or-nothing for the checkpoint, not for readers.
This holds for an apply of any size, one op included, so `max_apply_size` is None: cutting
applies smaller would isolate no reader, only cost a checkpoint write per cut. Closing the gap
takes one transactional batch per apply (its creates, its replaces `If-Match`, the checkpoint;
at most 100 operations and 2 MB), which then bounds `max_apply_size`; the peer cannot run
that (it rejects a replace or upsert in a batch: the Python SDK does not name each operation's
partition key, which the peer requires), so it is not written here.
Leases compare wall-clock times, like the SQLite store's. TTL is not used.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import anyio
import msgspec
from azure.core import MatchConditions
from azure.cosmos.exceptions import CosmosBatchOperationError

from adapters.cosmos.client import CosmosContainer, Item, backoff, gather, status_of
from domain.errors import BackendUnavailable
from domain.timeouts import Timeouts
from domain.views import Delete, Generations, ViewDoc, ViewOp

KIND = "view_store"
DEFAULT_CONTAINER = "spine_views"
_GENERATIONS = "~generations"
_CHECKPOINT = "checkpoint"
_LEASE = "lease"
_BATCH_OPS = 100  # Cosmos' limit per transactional batch
_BATCH_BYTES = 786_432  # its request limit is 2 MB; aiohttp warns of bodies over 1 MiB
_IDS_PER_QUERY = 100
_CONCURRENCY = 16
_MAX_RACES = 20
_Known = list[tuple[str, str]]  # named here: inside the class, `list` is the method
_Docs = list[ViewDoc]
_Ids = list[str]
_Items = list[Item]
_encoder = msgspec.json.Encoder()
_data_decoder = msgspec.json.Decoder(dict[str, Any])
_CONFLICTS = frozenset({404, 409, 412})


def _doc_id(collection: str, key: str) -> str:
    return "d" + hashlib.sha256(f"{collection}\x00{key}".encode()).hexdigest()


def _generations_id(partition_key: str, projection: str) -> str:
    return "g" + hashlib.sha256(f"{partition_key}\x00{projection}".encode()).hexdigest()


class CosmosViewStore:
    """`async with CosmosViewStore(endpoint=..., database=..., key=...) as views:`."""

    max_apply_size: int | None = None  # no apply is one transaction here: see the module docstring

    def __init__(
        self,
        *,
        endpoint: str,
        database: str,
        key: str,
        container: str = DEFAULT_CONTAINER,
        endpoint_discovery: bool | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self._store = CosmosContainer(
            KIND,
            endpoint=endpoint,
            database=database,
            container=container,
            key=key,
            endpoint_discovery=endpoint_discovery,
            excluded_paths=("/data/?",),
            timeouts=timeouts,
        )
        self._limit = anyio.Semaphore(_CONCURRENCY)

    async def __aenter__(self) -> CosmosViewStore:
        await self._store.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._store.__aexit__(exc_type, exc, tb)

    async def get(self, space: str, collection: str, key: str) -> ViewDoc | None:
        rows = await self._store.query(
            "SELECT c.position, c.data FROM c WHERE c.partition = @s AND c.id = @id AND c.live = true",
            space,
            {"@s": space, "@id": _doc_id(collection, key)},
        )
        if not rows:
            return None
        return ViewDoc(
            collection=collection,
            key=key,
            position=rows[0]["position"],
            data=_data_decoder.decode(rows[0]["data"]),
        )

    async def list(
        self, space: str, collection: str, *, prefix: str = "", after: str = "", limit: int = 100
    ) -> list[ViewDoc]:
        if limit < 1:
            return []
        sql = (
            f"SELECT TOP {int(limit)} c.key, c.position, c.data FROM c WHERE c.partition = @s"  # noqa: S608
            " AND c.kind = 'doc' AND c.collection = @c AND c.live = true AND c.key > @a"
        )
        params: dict[str, object] = {"@s": space, "@c": collection, "@a": after}
        if prefix:
            sql += " AND STARTSWITH(c.key, @x)"
            params["@x"] = prefix
        rows = await self._store.query(sql + " ORDER BY c.key", space, params)
        return [
            ViewDoc(
                collection=collection,
                key=row["key"],
                position=row["position"],
                data=_data_decoder.decode(row["data"]),
            )
            for row in rows
        ]

    async def apply(self, space: str, ops: Sequence[ViewOp], checkpoint: int) -> None:
        latest: dict[str, ViewOp] = {}  # per document, the newest op (the first of equals, as in order)
        for op in ops:
            doc_id = _doc_id(op.collection, op.key)
            seen = latest.get(doc_id)
            if seen is None or op.position > seen.position:
                latest[doc_id] = op
        todo, attempt = latest, 0
        while todo:
            if attempt == _MAX_RACES:
                raise BackendUnavailable(KIND, "the view store is too contended to apply; retry")
            if attempt:
                await backoff(min(attempt, 5))
            todo = await self._write(space, todo)
            attempt += 1
        await self._advance(space, checkpoint)

    def op_size(self, op: ViewOp) -> int:
        return 1

    async def _write(self, space: str, ops: dict[str, ViewOp]) -> dict[str, ViewOp]:
        """One round: create or replace what is newer; returns the ops another writer raced."""
        stored = await self._stored(space, [*ops])
        creates: _Items = []
        replaces: list[tuple[Item, str]] = []
        for doc_id, op in ops.items():
            found = stored.get(doc_id)
            if found is None:
                creates.append(_doc(space, doc_id, op))
            elif found[0] < op.position:
                replaces.append((_doc(space, doc_id, op), found[1]))
        outcomes = await gather(
            *(self._create(space, batch) for batch in _batches(creates)),
            *(self._replace(space, doc, etag) for doc, etag in replaces),
        )
        raced = {doc_id for outcome in outcomes for doc_id in outcome}
        return {doc_id: ops[doc_id] for doc_id in raced}

    async def _stored(self, space: str, ids: _Ids) -> dict[str, tuple[int, str]]:
        """(position, ETag) of those documents that exist."""

        async def chunk(part: _Ids) -> _Items:
            names = [f"@i{n}" for n in range(len(part))]
            async with self._limit:
                return await self._store.query(
                    f"SELECT c.id, c.position, c._etag FROM c WHERE c.partition = @s AND c.id IN ({', '.join(names)})",  # noqa: S608
                    space,
                    {"@s": space, **dict(zip(names, part, strict=True))},
                )

        parts = await gather(
            *(chunk(ids[i : i + _IDS_PER_QUERY]) for i in range(0, len(ids), _IDS_PER_QUERY))
        )
        return {row["id"]: (row["position"], row["_etag"]) for rows in parts for row in rows}

    async def _create(self, space: str, docs: _Items) -> _Ids:
        """Create absent documents in one batch; the ids that were not created."""
        async with self._limit:
            try:
                await self._store.call(
                    self._store.proxy.execute_item_batch,
                    [("create", (doc,)) for doc in docs],
                    partition_key=space,
                    passthrough=_CONFLICTS,
                )
            except CosmosBatchOperationError as exc:
                statuses = [int(r.get("statusCode", 0)) for r in exc.operation_responses or []]
                if any(s >= 400 and s not in _CONFLICTS and s != 424 for s in statuses):
                    raise self._store.unavailable(exc) from exc
                if len(statuses) != len(docs):
                    return [doc["id"] for doc in docs]  # no telling which landed: decide all again
                # Atomic batches undo everything (424 for the rest); the peer keeps what succeeded.
                return [doc["id"] for doc, status in zip(docs, statuses, strict=True) if status >= 400]
        return []

    async def _replace(self, space: str, doc: Item, etag: str) -> _Ids:
        async with self._limit:
            try:
                await self._store.call(
                    self._store.proxy.replace_item,
                    doc["id"],
                    doc,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                    passthrough=_CONFLICTS,
                )
            except Exception as exc:
                if status_of(exc) in _CONFLICTS:
                    return [doc["id"]]
                raise
        return []

    async def _advance(self, space: str, checkpoint: int) -> None:
        """Set the checkpoint to `checkpoint` unless it is already there or beyond."""
        for attempt in range(_MAX_RACES):
            rows = await self._store.query(
                "SELECT c.position, c._etag FROM c WHERE c.partition = @s AND c.id = @id",
                space,
                {"@s": space, "@id": _CHECKPOINT},
            )
            if rows and rows[0]["position"] >= checkpoint:
                return
            item = {"id": _CHECKPOINT, "partition": space, "kind": _CHECKPOINT, "position": checkpoint}
            if await self._put(space, item, rows[0]["_etag"] if rows else None):
                return
            await backoff(attempt)
        raise BackendUnavailable(KIND, "the view store is too contended to checkpoint; retry")

    async def _put(self, space: str, item: Item, etag: str | None) -> bool:
        """Create `item` (etag None) or replace it If-Match `etag`; False when someone was faster."""
        try:
            if etag is None:
                await self._store.call(self._store.proxy.create_item, item, passthrough=_CONFLICTS)
            else:
                await self._store.call(
                    self._store.proxy.replace_item,
                    item["id"],
                    item,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                    passthrough=_CONFLICTS,
                )
        except Exception as exc:
            if status_of(exc) in _CONFLICTS:
                return False
            raise
        return True

    async def checkpoint(self, space: str) -> int:
        rows = await self._store.query(
            "SELECT VALUE c.position FROM c WHERE c.partition = @s AND c.id = @id",
            space,
            {"@s": space, "@id": _CHECKPOINT},
        )
        return int(rows[0]) if rows else 0

    async def drop(self, space: str) -> None:
        ids: _Ids = await self._store.query(
            "SELECT VALUE c.id FROM c WHERE c.partition = @s AND c.kind = 'doc'", space, {"@s": space}
        )
        await gather(*(self._delete(space, doc_id) for doc_id in ids))
        await gather(self._delete(space, _CHECKPOINT), self._delete(space, _LEASE))

    async def _delete(self, space: str, item_id: str) -> None:
        async with self._limit:
            try:
                await self._store.call(
                    self._store.proxy.delete_item, item_id, partition_key=space, passthrough=frozenset({404})
                )
            except Exception as exc:
                if status_of(exc) != 404:
                    raise

    async def lease(self, space: str, holder: str, seconds: float) -> bool:
        for attempt in range(_MAX_RACES):
            now = time.time()
            rows = await self._store.query(
                "SELECT c.holder, c.until, c._etag FROM c WHERE c.partition = @s AND c.id = @id",
                space,
                {"@s": space, "@id": _LEASE},
            )
            if rows and rows[0]["holder"] != holder and rows[0]["until"] > now:
                return False
            item = {
                "id": _LEASE,
                "partition": space,
                "kind": _LEASE,
                "holder": holder,
                "until": now + seconds,
            }
            if await self._put(space, item, rows[0]["_etag"] if rows else None):
                return True
            await backoff(attempt)
        raise BackendUnavailable(KIND, "the view store is too contended to lease; retry")

    async def generations(self, partition_key: str, projection: str) -> Generations:
        rows = await self._store.query(
            "SELECT c.serving, c.building FROM c WHERE c.partition = @g AND c.id = @id",
            _GENERATIONS,
            {"@g": _GENERATIONS, "@id": _generations_id(partition_key, projection)},
        )
        if not rows:
            return Generations()
        return Generations(serving=rows[0]["serving"], building=rows[0].get("building"))

    async def set_generations(self, partition_key: str, projection: str, generations: Generations) -> None:
        item = {
            "id": _generations_id(partition_key, projection),
            "partition": _GENERATIONS,
            "kind": "generations",
            "pkey": partition_key,
            "projection": projection,
            "serving": generations.serving,
            "building": generations.building,
        }
        await self._store.call(self._store.proxy.upsert_item, item)

    async def known(self) -> _Known:
        rows = await self._store.query(
            "SELECT c.pkey, c.projection FROM c WHERE c.partition = @g", _GENERATIONS, {"@g": _GENERATIONS}
        )
        # a record of another shape is handed on as strings, for the caller to skip
        return sorted((str(row.get("pkey", "")), str(row.get("projection", ""))) for row in rows)


def _doc(space: str, doc_id: str, op: ViewOp) -> Item:
    deleted = isinstance(op, Delete)
    return {
        "id": doc_id,
        "partition": space,
        "kind": "doc",
        "collection": op.collection,
        "key": op.key,
        "position": op.position,
        "live": not deleted,
        "data": None if isinstance(op, Delete) else _encoder.encode(op.data).decode(),
    }


def _batches(docs: list[Item]) -> list[list[Item]]:
    batches: list[list[Item]] = []
    batch: list[Item] = []
    size = 0
    for doc in docs:
        cost = len(doc["data"] or "") * 2 + len(doc["key"]) * 2 + 300  # escaped JSON, generously
        if batch and (len(batch) == _BATCH_OPS or size + cost > _BATCH_BYTES):
            batches.append(batch)
            batch, size = [], 0
        batch.append(doc)
        size += cost
    if batch:
        batches.append(batch)
    return batches
