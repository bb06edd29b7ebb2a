"""Firestore view store: view documents, checkpoints, leases and generations in Cloud Firestore.

Layout (every id made valid by `doc_id`; a document key is hashed, so any key fits):

    view_spaces/{space}                        {"checkpoint"}
    view_spaces/{space}/{collection}/{h(key)}  live: {"k": key, "p": position, "d": JSON[, "n": parts]}
                                               tombstone: {"t": key, "p": position}
    view_spaces/{space}/{collection}/{h(key)}.{i}   {"d": the rest of a JSON over ~1 MiB}
    view_leases/{space}                        {"holder", "until": unix time}
    view_generations/{partition key/projection} {"pkey", "projection", "serving", "building"}

Only live documents carry `k`, so a listing is one range query on `k` (Firestore orders strings by
their UTF-8 bytes, as the contract wants) that never meets a tombstone or a part. `apply` is one
transaction: it reads the positions of the documents its ops touch and the checkpoint, skips each
op that is not newer, and writes the rest with the checkpoint, all or nothing. Data is stored as
JSON bytes (Firestore's own values cannot hold every JSON: no arrays in arrays), split across part
documents when it outgrows the 1 MiB document limit.

Limits and gaps: one Firestore commit carries at most 10 MiB (4 MiB against the emulator, whose
gRPC server refuses larger messages); Firestore no longer limits how many writes it holds. So
`max_apply_size` is in bytes: the commit budget of `firestore_client.commit_bytes` (9 MB, or
3.9 MB against the emulator) less `_CHECKPOINT_BYTES` for the checkpoint's write, and `op_size`
is `_op_bytes`: an op's JSON, key and collection, and a write's overhead for the document and for
each part it is split into. Deleting the parts an older, larger version of a document left is not
counted: each such delete is a name of ~200 bytes, within the margin between budget and limit. An
`apply` whose ops fit is one transaction with its checkpoint; the projection runtime issues no
larger one unless a single event's own ops exceed it. The gap: a larger apply is written as
several transactions, the checkpoint in the last: if one of those fails, the documents of the
earlier ones stay, newer than the checkpoint says, until re-delivery reaches them again (the
position rule makes that harmless), and a reader may see them meanwhile.
Keys longer than 1,500 bytes are listed in the order of their first 1,500 bytes.
`drop` deletes in batches, not atomically (as the SQLite store does). Leases use wall-clock time.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from itertools import takewhile
from types import TracebackType
from typing import Any, TypeVar

import msgspec
from google.cloud.firestore import AsyncClient, AsyncCollectionReference, AsyncDocumentReference, FieldFilter
from google.cloud.firestore_v1.async_transaction import AsyncTransaction, async_transactional
from google.cloud.firestore_v1.base_document import DocumentSnapshot
from google.cloud.firestore_v1.field_path import FieldPath

from adapters.firestore.client import (
    DEFAULT_DATABASE,
    Retrying,
    close_client,
    commit_bytes,
    doc_id,
    firestore_config,
    firestore_timeouts,
    open_client,
)
from domain.errors import BackendUnavailable
from domain.views import Delete, Generations, Upsert, ViewDoc, ViewOp

T = TypeVar("T")
_SPACES, _LEASES, _GENERATIONS = "view_spaces", "view_leases", "view_generations"
_DOC_BYTES = 1_000_000  # of Firestore's 1 MiB per document, with room for names and overhead
_DROP_BATCH = 500
_CHECKPOINT_BYTES = 1_000  # the checkpoint's write in an apply's commit: the space's name and a number
BULK_SECONDS = 30.0  # the least a batch's commit or a drop is given (see `_bulk`)
_WRITE_BYTES = 300  # a write's overhead besides its data: the document's name, field names, framing
_Known = list[tuple[str, str]]  # named here: inside the class, `list` is the method
_Docs = list[ViewDoc]
_Encoded = list[tuple[ViewOp, bytes | None]]
_Snapshot = DocumentSnapshot[AsyncDocumentReference]
_encoder = msgspec.json.Encoder()
_data_decoder = msgspec.json.Decoder(dict[str, Any])


class FirestoreViewStore:
    """`async with FirestoreViewStore(project=…) as views:`; every call is retried, then 503s."""

    def __init__(
        self,
        *,
        project: str,
        database: str = DEFAULT_DATABASE,
        emulator_host: str | None = None,
        kind: str = "view_store",
        retry_seconds: float = 15.0,
        attempt_seconds: float = 30.0,
        connect_seconds: float | None = None,
    ) -> None:
        self.project = project
        self.database = database
        self.kind = kind
        self._emulator_host = emulator_host
        self._connect_seconds = connect_seconds
        self._retrying = Retrying(kind, seconds=retry_seconds, attempt_seconds=attempt_seconds)
        # A projection's batch (a commit of up to ~9 MB) and dropping a generation are work no
        # request waits for: they keep a budget that fits their size however short the route's
        # request timeout, or a valid batch would time out again on every retry and stall its view.
        self._bulk = Retrying(
            kind, seconds=max(retry_seconds, BULK_SECONDS), attempt_seconds=max(attempt_seconds, BULK_SECONDS)
        )
        self._apply_bytes = commit_bytes(emulator_host) - _CHECKPOINT_BYTES
        self._client: AsyncClient | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, object], *, kind: str = "view_store") -> FirestoreViewStore:
        """From a route's `config`: `{"project", "database"?, "emulator_host"?,
        "connect_timeout_seconds"?, "request_timeout_seconds"?}`."""
        c = firestore_config(config, kind)
        timeouts = firestore_timeouts(config, kind)
        return cls(
            project=str(c["project"]),
            database=str(c["database"]),
            emulator_host=c["emulator_host"],
            kind=kind,
            retry_seconds=timeouts.request,
            attempt_seconds=timeouts.request,
            connect_seconds=timeouts.connect,
        )

    async def __aenter__(self) -> FirestoreViewStore:
        self._client = open_client(
            self.project, self.database, self._emulator_host, self.kind, connect_seconds=self._connect_seconds
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await close_client(self._client)
            self._client = None

    @property
    def max_apply_size(self) -> int | None:
        """Bytes (as `_op_bytes` counts them) of one commit, less the checkpoint's write."""
        return self._apply_bytes

    def op_size(self, op: ViewOp) -> int:
        return _op_bytes(op, None if isinstance(op, Delete) else _encoder.encode(op.data))

    @property
    def client(self) -> AsyncClient:
        if self._client is None:
            raise BackendUnavailable(self.kind, "the view store is not started")
        return self._client

    # documents

    async def get(self, space: str, collection: str, key: str) -> ViewDoc | None:
        async def attempt() -> ViewDoc | None:
            snapshot = await self._doc(space, collection, key).get()
            docs = await self._view_docs(collection, [snapshot])
            return docs[0] if docs else None

        return await self._retrying.run(attempt)

    async def list(
        self, space: str, collection: str, *, prefix: str = "", after: str = "", limit: int = 100
    ) -> list[ViewDoc]:
        if limit <= 0:
            return []
        # keys > after and >= prefix; the first key past the prefix ends the page
        bound = FieldFilter("k", ">", after) if after >= prefix else FieldFilter("k", ">=", prefix)
        query = self._collection(space, collection).where(filter=bound).order_by("k").limit(limit)

        async def attempt() -> _Docs:
            snapshots = [snapshot async for snapshot in query.stream()]
            # keys are sorted: once one leaves the prefix, every later one has too
            return list(
                takewhile(
                    lambda doc: doc.key.startswith(prefix), await self._view_docs(collection, snapshots)
                )
            )

        return await self._retrying.run(attempt)

    async def _view_docs(self, collection: str, snapshots: Sequence[_Snapshot]) -> _Docs:
        """Live documents among `snapshots`, their JSON completed from part documents where split."""
        fields_of = [(s, s.to_dict() or {}) for s in snapshots if s.exists]
        live = [(s, d) for s, d in fields_of if "k" in d]
        refs = [
            s.reference.parent.document(f"{s.id}.{i}")
            for s, d in live
            if d.get("n", 1) > 1
            for i in range(1, d["n"])
        ]
        rest = {part.id: part.get("d") async for part in self.client.get_all(refs)} if refs else {}
        docs = []
        for snapshot, fields in live:
            data: bytes = fields["d"] + b"".join(
                rest[f"{snapshot.id}.{i}"] for i in range(1, fields.get("n", 1))
            )
            docs.append(ViewDoc(collection=collection, key=fields["k"], position=fields["p"], data=_data_decoder.decode(data)))  # fmt: skip
        return docs

    async def apply(self, space: str, ops: Sequence[ViewOp], checkpoint: int) -> None:
        encoded = [(op, None if isinstance(op, Delete) else _encoder.encode(op.data)) for op in ops]
        chunks = _chunks(encoded, self._apply_bytes)
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            await self._transaction(self._apply, space, chunk, checkpoint if last else None, bulk=True)

    async def _apply(
        self,
        transaction: AsyncTransaction,
        space: str,
        ops: _Encoded,
        checkpoint: int | None,
    ) -> None:
        space_ref = self._space(space)
        refs = {(op.collection, op.key): self._doc(space, op.collection, op.key) for op, _ in ops}
        reads = [*refs.values(), space_ref] if checkpoint is not None else list(refs.values())
        stored: dict[str, tuple[int, int]] = {}  # document path -> (position, parts)
        stored_checkpoint = 0
        async for snapshot in self.client.get_all(
            reads, field_paths=["p", "n", "checkpoint"], transaction=transaction
        ):
            if not snapshot.exists:
                continue
            fields = snapshot.to_dict() or {}
            if snapshot.reference.path == space_ref.path:
                stored_checkpoint = int(fields.get("checkpoint", 0))
            else:
                stored[snapshot.reference.path] = (int(fields.get("p", 0)), int(fields.get("n", 1)))
        newest: dict[str, tuple[ViewOp, bytes | None]] = {}
        for op, data in ops:
            path = refs[(op.collection, op.key)].path
            kept = newest.get(path)
            if op.position > (kept[0].position if kept else stored.get(path, (0, 1))[0]):
                newest[path] = (op, data)
        for path, (op, data) in newest.items():
            ref = refs[(op.collection, op.key)]
            _write(transaction, ref, op, data, stored.get(path, (0, 1))[1])
        if checkpoint is not None:
            transaction.set(space_ref, {"space": space, "checkpoint": max(stored_checkpoint, checkpoint)})

    async def checkpoint(self, space: str) -> int:
        async def attempt() -> int:
            snapshot = await self._space(space).get(field_paths=["checkpoint"])
            return int(snapshot.get("checkpoint")) if snapshot.exists else 0

        return await self._retrying.run(attempt)

    async def drop(self, space: str) -> None:
        async def attempt() -> None:
            async for collection in self._space(space).collections():
                await _delete_all(self.client, collection)
            batch = self.client.batch()
            batch.delete(self._space(space))
            batch.delete(self.client.collection(_LEASES).document(doc_id(space)))
            await batch.commit()

        await self._bulk.run(attempt)

    # leases and generations

    async def lease(self, space: str, holder: str, seconds: float) -> bool:
        return await self._transaction(self._lease, space, holder, seconds)

    async def _lease(self, transaction: AsyncTransaction, space: str, holder: str, seconds: float) -> bool:
        ref = self.client.collection(_LEASES).document(doc_id(space))
        snapshot = await ref.get(transaction=transaction)
        now = time.time()
        if snapshot.exists and snapshot.get("holder") != holder and snapshot.get("until") > now:
            return False
        transaction.set(ref, {"space": space, "holder": holder, "until": now + seconds})
        return True

    async def generations(self, partition_key: str, projection: str) -> Generations:
        async def attempt() -> Generations:
            snapshot = await self._generations(partition_key, projection).get()
            if not snapshot.exists:
                return Generations()
            return Generations(serving=snapshot.get("serving"), building=snapshot.get("building"))

        return await self._retrying.run(attempt)

    async def set_generations(self, partition_key: str, projection: str, generations: Generations) -> None:
        ref = self._generations(partition_key, projection)
        fields = {"pkey": partition_key, "projection": projection, **msgspec.to_builtins(generations)}
        fields.setdefault("building", None)
        await self._retrying.run(lambda: ref.set(fields))

    async def known(self) -> _Known:
        async def attempt() -> _Known:
            query = self.client.collection(_GENERATIONS).select(["pkey", "projection"])
            # `snapshot.get` raises for a missing field: a record of another shape is handed on
            # as strings, for the caller to skip
            docs = [snapshot.to_dict() or {} async for snapshot in query.stream()]
            return sorted((str(doc.get("pkey", "")), str(doc.get("projection", ""))) for doc in docs)

        return await self._retrying.run(attempt)

    # helpers

    async def _transaction(self, body: Callable[..., Awaitable[T]], *args: Any, bulk: bool = False) -> T:
        async def attempt() -> T:
            return await async_transactional(body)(self.client.transaction(), *args)

        return await (self._bulk if bulk else self._retrying).run(attempt)

    def _space(self, space: str) -> AsyncDocumentReference:
        return self.client.collection(_SPACES).document(doc_id(space))

    def _collection(self, space: str, collection: str) -> AsyncCollectionReference:
        docs: AsyncCollectionReference = self._space(space).collection(doc_id(collection))
        return docs

    def _doc(self, space: str, collection: str, key: str) -> AsyncDocumentReference:
        return self._collection(space, collection).document(
            hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
        )

    def _generations(self, partition_key: str, projection: str) -> AsyncDocumentReference:
        return self.client.collection(_GENERATIONS).document(doc_id(f"{partition_key}/{projection}"))


def _write(
    transaction: AsyncTransaction, ref: AsyncDocumentReference, op: ViewOp, data: bytes | None, had: int
) -> None:
    """Set one view document (and its parts), removing parts an older, larger version left."""
    if isinstance(op, Upsert) and data is not None:
        room = _room(op.key)
        rest = [data[i : i + _DOC_BYTES] for i in range(room, len(data), _DOC_BYTES)]
        fields: dict[str, object] = {"k": op.key, "p": op.position, "d": data[:room]}
        if rest:
            fields["n"] = 1 + len(rest)
        transaction.set(ref, fields)
        for i, part in enumerate(rest, start=1):
            transaction.set(ref.parent.document(f"{ref.id}.{i}"), {"d": part})
        parts = 1 + len(rest)
    else:
        transaction.set(ref, {"t": op.key, "p": op.position})
        parts = 1
    for i in range(parts, had):
        transaction.delete(ref.parent.document(f"{ref.id}.{i}"))


def _room(key: str) -> int:
    """How much of a document's JSON its first document holds, beside its key and position."""
    return _DOC_BYTES - 2 * len(key.encode()) - 200


def _op_bytes(op: ViewOp, data: bytes | None) -> int:
    """What an op's writes add to a commit, generously: its JSON, its key (a field, and hashed in
    the name), its collection, and a write's overhead for the document and each of its parts."""
    size = len(data) if data else 0
    writes = 1 + len(range(_room(op.key), size, _DOC_BYTES))  # as `_write` splits it
    return 2 * len(op.key.encode()) + len(op.collection.encode()) + _WRITE_BYTES * writes + size


def _chunks(ops: _Encoded, most: int) -> list[_Encoded]:
    """Ops split where one commit would outgrow `most` bytes (one chunk, nearly always)."""
    chunks: list[_Encoded] = [[]]
    size = 0
    for op, data in ops:
        grows = _op_bytes(op, data)
        if chunks[-1] and size + grows > most:
            chunks.append([])
            size = 0
        chunks[-1].append((op, data))
        size += grows
    return chunks


async def _delete_all(client: AsyncClient, collection: AsyncCollectionReference) -> None:
    """Delete a collection's documents: pages by id, each deleted by a batch while the next is read."""
    query = collection.order_by(FieldPath.document_id()).select([FieldPath.document_id()]).limit(_DROP_BATCH)
    page = query
    deleting: list[asyncio.Task[Any]] = []
    try:
        while snapshots := [snapshot async for snapshot in page.stream()]:
            batch = client.batch()
            for snapshot in snapshots:
                batch.delete(snapshot.reference)
            deleting.append(asyncio.create_task(batch.commit()))
            page = query.start_after(snapshots[-1])
        await asyncio.gather(*deleting)
    finally:
        for task in deleting:
            task.cancel()
