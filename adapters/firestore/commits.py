"""How the Firestore spine lays events out in documents: commit documents, packed and split.

`partitions/{p}` holds the partition's head. `partitions/{p}/commits/{first position, 16 digits}`
holds a run of consecutive events of one group commit:

    first, last   positions of its first and last event (`last` orders scans: single-field index)
    token         the id of the transaction attempt that wrote it (to settle an unknown outcome)
    ids           every event id, in position order (`array-contains-any` finds stored ids)
    streams       {"s" + stream: {"p": last position, "v": last version}} of each stream in it
                  (single-field indexes on these answer "where is stream S after X")
    body          the events as one JSON array, each element exactly as `event_encoder` wrote it
    parts         present when `body` continues in `partitions/{p}/parts/{commit id}.{i}`

A group is packed into as few commit documents as fit Firestore's 1 MiB document limit; an event
too large for one document alone gets a commit document whose body continues in part documents.
Only commit documents carry `last`, `ids` and `streams`, so scans and id look-ups never see parts.

Retention rewrites a commit document's `body` and `ids` without the events it removes, and
deletes the parts of one whose only event it removes; everything else stays
(`adapters.firestore.removal`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import msgspec
from google.cloud.firestore import AsyncClient, AsyncCollectionReference, AsyncDocumentReference
from google.cloud.firestore_v1.async_transaction import AsyncTransaction
from google.cloud.firestore_v1.base_document import DocumentSnapshot
from google.cloud.firestore_v1.field_path import FieldPath

from adapters.firestore.client import doc_id
from domain.events import Event, event_encoder

PARTITIONS = "partitions"
COMMITS = "commits"
PARTS = "parts"
_PAD = 16
# Firestore counts field names, values and ~100 bytes of overhead against 1 MiB (1,048,576).
DOC_BYTES = 1_000_000
PACK_BYTES = 800_000  # events are packed into one commit document up to about this many bytes
_MAX_EVENTS_PER_DOC = 5_000  # each id is an index entry; Firestore allows 40,000 per document
_MAX_STREAMS_PER_DOC = 1_000  # each stream adds four index entries (p and v, both directions)
_ID_OVERHEAD = 16


class EventHead(msgspec.Struct, frozen=True, gc=False):
    """The fields of a stored event that scans filter on; the rest stays encoded."""

    id: str
    type: str
    stream: str
    version: int
    position: int


_heads_decoder = msgspec.json.Decoder(list[EventHead])
_raws_decoder = msgspec.json.Decoder(list[msgspec.Raw])


def partition_ref(client: AsyncClient, key: str) -> AsyncDocumentReference:
    return client.collection(PARTITIONS).document(doc_id(key))


def commits_of(client: AsyncClient, key: str) -> AsyncCollectionReference:
    commits: AsyncCollectionReference = partition_ref(client, key).collection(COMMITS)
    return commits


def commit_id(first: int) -> str:
    return f"{first:0{_PAD}d}"


def part_refs(client: AsyncClient, key: str, commit: str, parts: int) -> list[AsyncDocumentReference]:
    collection = partition_ref(client, key).collection(PARTS)
    return [collection.document(f"{commit}.{i}") for i in range(1, parts)]


def stream_field(stream: str, which: str) -> str:
    """The field path of a stream's last position ("p") or version ("v") in a commit document."""
    return str(FieldPath("streams", "s" + stream, which).to_api_repr())


@dataclass
class CommitDoc:
    """One commit document to create, and the part documents its body continues in."""

    id: str
    fields: dict[str, object]
    parts: list[bytes] = field(default_factory=list)


def pack(events: Sequence[Event], token: str) -> list[CommitDoc]:
    """Consecutive events of one partition → commit documents that each fit Firestore's limits."""
    docs: list[CommitDoc] = []
    run: list[tuple[Event, bytes]] = []
    size = 0
    streams: set[str] = set()
    for event in events:
        body = event_encoder.encode(event)
        grows = (
            len(body)
            + len(event.id)
            + _ID_OVERHEAD
            + (0 if event.stream in streams else 2 * len(event.stream) + 64)
        )
        if run and (
            size + grows > PACK_BYTES
            or len(run) == _MAX_EVENTS_PER_DOC
            or (event.stream not in streams and len(streams) == _MAX_STREAMS_PER_DOC)
        ):
            docs.append(_commit_doc(run, token))
            run, size, streams = [], 0, set()
            grows = len(body) + len(event.id) + _ID_OVERHEAD + 2 * len(event.stream) + 64
        run.append((event, body))
        streams.add(event.stream)
        size += grows
    if run:
        docs.append(_commit_doc(run, token))
    return docs


def _commit_doc(run: list[tuple[Event, bytes]], token: str) -> CommitDoc:
    first, last = run[0][0].position, run[-1][0].position
    streams: dict[str, dict[str, int]] = {}
    for event, _ in run:
        streams["s" + event.stream] = {"p": event.position, "v": event.version}
    ids = [event.id for event, _ in run]
    body = b"[" + b",".join(encoded for _, encoded in run) + b"]"
    header = sum(len(i) + _ID_OVERHEAD for i in ids) + sum(2 * len(s) + 64 for s in streams) + 400
    room = DOC_BYTES - header
    fields: dict[str, object] = {"first": first, "last": last, "token": token, "ids": ids, "streams": streams}
    if len(body) <= room:
        fields["body"] = body
        return CommitDoc(id=commit_id(first), fields=fields)
    fields["body"] = body[:room]
    rest = [body[i : i + DOC_BYTES] for i in range(room, len(body), DOC_BYTES)]
    fields["parts"] = 1 + len(rest)
    return CommitDoc(id=commit_id(first), fields=fields, parts=rest)


class Commit:
    """A stored commit document, decoded: the heads to filter on and each event's stored JSON."""

    __slots__ = ("first", "heads", "last", "raws")

    def __init__(self, first: int, last: int, body: bytes) -> None:
        self.first = first
        self.last = last
        self.heads = _heads_decoder.decode(body)
        self.raws = _raws_decoder.decode(body)

    def events(self) -> Iterator[tuple[EventHead, msgspec.Raw]]:
        return zip(self.heads, self.raws, strict=True)


async def load(
    client: AsyncClient,
    key: str,
    snapshots: Sequence[DocumentSnapshot[AsyncDocumentReference]],
    transaction: AsyncTransaction | None = None,
) -> list[Commit]:
    """Decode commit documents read by a query, fetching the part documents of split ones."""
    docs = [(snapshot.id, snapshot.to_dict() or {}) for snapshot in snapshots]
    refs = [
        ref for id_, d in docs if d.get("parts", 1) > 1 for ref in part_refs(client, key, id_, d["parts"])
    ]
    rest: dict[str, bytes] = {}
    if refs:
        async for part in client.get_all(refs, transaction=transaction):
            if part.exists:
                rest[part.id] = part.get("body")
    commits = []
    for id_, d in docs:
        body: bytes = d["body"]
        if d.get("parts", 1) > 1:
            names = [f"{id_}.{i}" for i in range(1, d["parts"])]
            # Parts are written with their commit and deleted only by retention, with its one
            # event: one missing means that event was removed since the commit was read.
            body = body + b"".join(rest[name] for name in names) if all(n in rest for n in names) else b"[]"
        commits.append(Commit(d["first"], d["last"], body))
    return commits
