"""One Firestore group commit's transaction (why it is atomic: `adapters.firestore.spine`).

`decide` runs inside the transaction: it reads the state the batch needs, decides each request
and writes the commit documents (laid out by `adapters.firestore.commits`); `Cache` remembers heads and
stream versions between commits, and `CommitDecision` is what one attempt decided.

Stream versions come from the `streams` map of the newest commit document holding the stream,
remembered between commits while the head is still the one we wrote. Stored ids are found with
`array-contains-any` on `ids` (every id, generated ones included).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.cloud.firestore import AsyncClient, AsyncDocumentReference, FieldFilter
from google.cloud.firestore_v1.async_transaction import AsyncTransaction

from adapters.firestore.commits import commits_of, load, pack, part_refs, partition_ref
from adapters.firestore.reads import stream_version
from domain.append import AppendRequest, StoredId, client_ids, decide_append
from domain.errors import SpineError
from domain.events import AppendResult, Event
from domain.partition import Partition

log = logging.getLogger(f"spine.{__name__}")

_ID_CHUNK = 30  # values per `array-contains-any`
_MAX_CACHED_STREAMS = 100_000


class Pending:
    __slots__ = ("future", "partition", "request", "size")

    def __init__(self, partition: Partition, request: AppendRequest, size: int, future: asyncio.Future[AppendResult]) -> None:  # fmt: skip
        self.partition = partition
        self.request = request
        self.size = size
        self.future = future


@dataclass
class CommitDecision:
    """What one transaction attempt decided: the outcomes, and the state it leaves if it commits."""

    token: str
    outcomes: list[AppendResult | SpineError]
    read_heads: dict[str, int]  # as the attempt found them
    heads: dict[str, int]  # as it leaves them
    versions: dict[tuple[str, str], int]
    probe: AsyncDocumentReference | None = None  # a commit document this attempt creates
    events: int = 0


@dataclass
class Cache:
    """Heads and stream versions as of our last commit; true while a head is still the one we wrote."""

    heads: dict[str, int] = field(default_factory=dict)
    versions: OrderedDict[tuple[str, str], int] = field(default_factory=OrderedDict)

    def update(self, decision: CommitDecision) -> None:
        for key, head in decision.heads.items():
            if self.heads.get(key) != decision.read_heads[key]:
                self.forget(key)  # someone else wrote since: only what this decision read is known
            self.heads[key] = head
        self.versions.update(decision.versions)
        for pair in decision.versions:
            self.versions.move_to_end(pair)
        while len(self.versions) > _MAX_CACHED_STREAMS:
            self.versions.popitem(last=False)

    def forget(self, key: str) -> None:
        self.heads.pop(key, None)
        for pair in [pair for pair in self.versions if pair[0] == key]:
            del self.versions[pair]


async def decide(
    transaction: AsyncTransaction,
    client: AsyncClient,
    cache: Cache,
    batch: list[Pending],
    unknown: list[CommitDecision],
    decided: list[CommitDecision | None],
) -> CommitDecision:
    """Inside the transaction: read the state the batch needs, decide each request, write."""
    decided[0] = None
    if unknown:
        landed = await _landed(client, transaction, unknown)
        if landed is not None:
            return landed
    keys = list(dict.fromkeys(pending.partition.key for pending in batch))
    heads, versions, stored = await _state(client, cache, transaction, batch, keys)
    read_heads = dict(heads)
    token = uuid.uuid4().hex
    recorded_at = datetime.now(UTC)
    written: dict[tuple[str, str], StoredId] = {}
    appended: dict[str, list[Event]] = {}
    outcomes: list[AppendResult | SpineError] = []
    for pending in batch:
        key, request = pending.partition.key, pending.request
        ids = client_ids(request)
        found = {i: written[(key, i)] for i in ids if (key, i) in written}
        found.update({i: stored[(key, i)] for i in ids if (key, i) in stored})
        try:
            events, result = decide_append(
                request,
                head=heads[key],
                stream_version=versions[(key, request.stream)],
                stored=list(found.values()),
                recorded_at=recorded_at,
            )
        except SpineError as exc:
            outcomes.append(exc)
            continue
        for event in events:
            written[(key, event.id)] = StoredId(event.id, event.stream, event.version, event.position)
        if events:
            appended.setdefault(key, []).extend(events)
            heads[key] = result.last_position
            versions[(key, request.stream)] = result.stream_version
        outcomes.append(result)
    decision = CommitDecision(
        token=token, outcomes=outcomes, read_heads=read_heads, heads=heads, versions=versions
    )
    for key, events in appended.items():
        commits = commits_of(client, key)
        for doc in pack(events, token):
            ref = commits.document(doc.id)
            transaction.create(ref, doc.fields)
            for part_ref, body in zip(
                part_refs(client, key, doc.id, 1 + len(doc.parts)), doc.parts, strict=True
            ):
                transaction.create(part_ref, {"body": body})
            decision.probe = decision.probe or ref
        transaction.set(partition_ref(client, key), {"head": heads[key], "partition": key})
        decision.events += len(events)
    decided[0] = decision
    return decision


async def _landed(
    client: AsyncClient, transaction: AsyncTransaction, unknown: list[CommitDecision]
) -> CommitDecision | None:
    """The earlier attempt of this batch whose commit did land after all, if one did."""
    by_token = {decision.token: decision for decision in unknown}
    refs = [decision.probe for decision in unknown if decision.probe is not None]
    async for snapshot in client.get_all(refs, field_paths=["token"], transaction=transaction):
        if snapshot.exists and snapshot.get("token") in by_token:
            decision = by_token[snapshot.get("token")]
            log.info(
                "firestore spine: a commit of unknown outcome had landed", extra={"events": decision.events}
            )
            return decision
    return None


async def _heads(client: AsyncClient, transaction: AsyncTransaction, keys: list[str]) -> dict[str, int]:
    refs = {partition_ref(client, key).path: key for key in keys}
    heads = dict.fromkeys(keys, 0)
    snapshots = client.get_all(
        [partition_ref(client, key) for key in keys], field_paths=["head"], transaction=transaction
    )
    async for snapshot in snapshots:
        if snapshot.exists:
            heads[refs[snapshot.reference.path]] = int(snapshot.get("head"))
    return heads


async def _state(
    client: AsyncClient, cache: Cache, transaction: AsyncTransaction, batch: list[Pending], keys: list[str]
) -> tuple[dict[str, int], dict[tuple[str, str], int], dict[tuple[str, str], StoredId]]:
    """Heads, stream versions and stored ids, read side by side (one round trip, mostly).

    A stream version we remember is good while its partition's head is the one we wrote;
    the others are looked up at once, beside the heads, and again should the head have moved.
    """
    pairs = list(dict.fromkeys((pending.partition.key, pending.request.stream) for pending in batch))
    cached = {pair: cache.versions[pair] for pair in pairs if pair in cache.versions}
    missing = [pair for pair in pairs if pair not in cached]
    wanted: dict[str, set[str]] = {}
    for pending in batch:
        wanted.setdefault(pending.partition.key, set()).update(client_ids(pending.request))
    id_lookups = [
        _stored(client, transaction, key, chunk)
        for key, ids in wanted.items()
        for chunk in _chunks(sorted(ids), _ID_CHUNK)
    ]
    heads, found, stored_parts = await asyncio.gather(
        _heads(client, transaction, keys),
        asyncio.gather(*(stream_version(client, key, stream, transaction) for key, stream in missing)),
        asyncio.gather(*id_lookups),
    )
    versions = dict(zip(missing, found, strict=True))
    stale = [pair for pair in cached if cache.heads.get(pair[0]) != heads[pair[0]]]
    versions.update({pair: version for pair, version in cached.items() if pair not in stale})
    again = await asyncio.gather(*(stream_version(client, key, stream, transaction) for key, stream in stale))
    versions.update(zip(stale, again, strict=True))
    stored: dict[tuple[str, str], StoredId] = {}
    for part in stored_parts:
        stored.update(part)
    return heads, versions, stored


async def _stored(
    client: AsyncClient, transaction: AsyncTransaction, key: str, ids: list[str]
) -> dict[tuple[str, str], StoredId]:
    query = commits_of(client, key).where(filter=FieldFilter("ids", "array_contains_any", ids))
    snapshots = [snapshot async for snapshot in query.stream(transaction=transaction)]
    wanted = set(ids)
    return {
        (key, head.id): StoredId(head.id, head.stream, head.version, head.position)
        for commit in await load(client, key, snapshots, transaction)
        for head in commit.heads
        if head.id in wanted
    }


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
